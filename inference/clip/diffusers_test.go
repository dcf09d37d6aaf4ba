package clip_test

import (
	"os"
	"reflect"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// The tiny model as a diffusers folder, opened by package checkpoint
// (which renames its tensors to CompVis keys), has the same config and
// gives the golden last_hidden_state.
func TestDiffusersFolder(t *testing.T) {
	ck, err := checkpoint.Open(golden.Path(t, "tiny_diffusers"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	raw, ok := ck.Config("text_encoder")
	if !ok {
		t.Fatal("no text_encoder config.json")
	}
	cfg, err := clip.ConfigFromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(golden.Path(t, "tiny_clip_text_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := clip.ConfigFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("diffusers config %v, OpenAI-style config %v", cfg, want)
	}
	m, err := clip.Load(ops.CPU(), ck, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const io = "tiny_clip_text_io.safetensors"
	f := golden.Open(t, io)
	v, shape := golden.Float32(t, f, "input_ids")
	ids := make([]int, len(v))
	for i, x := range v {
		ids[i] = int(x)
	}
	out, err := m.Forward(ids, shape[0])
	if err != nil {
		t.Fatal(err)
	}
	wantOut, _ := golden.Float32(t, f, "last_hidden_state")
	golden.Check(t, "last_hidden_state via diffusers folder", out.Data(), wantOut, golden.Tolerance(t, io, "last_hidden_state"))
}
