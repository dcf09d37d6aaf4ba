package vae_test

import (
	"context"
	"os"
	"reflect"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/vae"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// The tiny model as a diffusers folder, opened by package checkpoint
// (which renames its tensors to CompVis keys), has the same config and
// decodes and encodes as the goldens say.
func TestDiffusersFolder(t *testing.T) {
	ck, err := checkpoint.Open(golden.Path(t, "tiny_diffusers"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	raw, ok := ck.Config("vae")
	if !ok {
		t.Fatal("no vae config.json")
	}
	cfg, err := vae.ConfigFromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(golden.Path(t, "tiny_vae_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := vae.ConfigFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("diffusers config %v, CompVis config %v", cfg, want)
	}
	m, err := vae.Load(ops.CPU(), ck, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const io = "tiny_vae_io.safetensors"
	f := golden.Open(t, io)
	zd, zs := golden.Float32(t, f, "z")
	dec, err := m.Decode(context.Background(), tensor.MustNew(zd, zs...))
	if err != nil {
		t.Fatal(err)
	}
	wantDec, _ := golden.Float32(t, f, "decoded")
	golden.Check(t, "decoded via diffusers folder", dec.Data(), wantDec, golden.Tolerance(t, io, "decoded"))
	xd, xs := golden.Float32(t, f, "x")
	post, err := m.Encode(context.Background(), tensor.MustNew(xd, xs...))
	if err != nil {
		t.Fatal(err)
	}
	wantMean, _ := golden.Float32(t, f, "mean")
	golden.Check(t, "mean via diffusers folder", post.Mean.Data(), wantMean, golden.Tolerance(t, io, "mean"))
}
