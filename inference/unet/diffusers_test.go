package unet_test

import (
	"context"
	"os"
	"reflect"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// The tiny model as a diffusers folder, opened by package checkpoint
// (which renames its tensors to CompVis keys), has the same config and
// gives the golden eps.
func TestDiffusersFolder(t *testing.T) {
	ck, err := checkpoint.Open(golden.Path(t, "tiny_diffusers"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	raw, ok := ck.Config("unet")
	if !ok {
		t.Fatal("no unet config.json")
	}
	cfg, err := unet.ConfigFromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(golden.Path(t, "tiny_unet_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := unet.ConfigFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	want.SampleSize = cfg.SampleSize // only diffusers configs give it
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("diffusers config %v, CompVis config %v", cfg, want)
	}
	if testing.Short() {
		return
	}
	m, err := unet.Load(ops.CPU(), ck, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := golden.Open(t, "tiny_unet_io.safetensors")
	xd, xs := golden.Float32(t, f, "x")
	ts, _ := golden.Float32(t, f, "timesteps")
	cd, cs := golden.Float32(t, f, "context")
	eps, err := m.Forward(context.Background(), tensor.MustNew(xd, xs...), ts, tensor.MustNew(cd, cs...))
	if err != nil {
		t.Fatal(err)
	}
	wantEps, _ := golden.Float32(t, f, "eps")
	golden.Check(t, "eps via diffusers folder", eps.Data(), wantEps, golden.Tolerance(t, "tiny_unet_io.safetensors", "eps"))
}
