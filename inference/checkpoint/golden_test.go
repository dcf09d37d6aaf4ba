package checkpoint

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// goldenParts are the single-file CompVis golden models.
var goldenParts = []string{"tiny_unet.safetensors", "tiny_vae.safetensors", "tiny_clip_text.safetensors"}

// stored is one tensor as read back: dtype, shape and raw bytes.
type stored struct {
	dtype string
	shape []int
	data  []byte
}

// readAll reads every tensor of a checkpoint through the public path.
func readAll(t *testing.T, c *Checkpoint) map[string]stored {
	t.Helper()
	out := map[string]stored{}
	for _, n := range c.Names() {
		shape, _ := c.Shape(n)
		_, b, keep, err := c.bytes(n)
		b = append([]byte(nil), b...) // a mapped view lives only as long as keep
		runtime.KeepAlive(keep)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Float32(n); err != nil {
			t.Fatal(err)
		}
		out[n] = stored{c.DType(n), shape, b}
	}
	return out
}

// goldenReference opens the three golden files through Open and merges them.
func goldenReference(t *testing.T) map[string]stored {
	dir := golden.Dir(t)
	want := map[string]stored{}
	for _, part := range goldenParts {
		for n, s := range readAll(t, mustOpen(t, filepath.Join(dir, part), Options{})) {
			if _, dup := want[n]; dup {
				t.Fatalf("%s appears in two golden files", n)
			}
			want[n] = s
		}
	}
	return want
}

// sameTensors checks that got holds exactly the reference tensors, with the
// same dtypes and shapes and bit-identical data.
func sameTensors(t *testing.T, what string, got, want map[string]stored) {
	t.Helper()
	for n, w := range want {
		g, ok := got[n]
		switch {
		case !ok:
			t.Errorf("%s: missing %s", what, n)
		case g.dtype != w.dtype || !equalInts(g.shape, w.shape):
			t.Errorf("%s: %s is %s %v, want %s %v", what, n, g.dtype, g.shape, w.dtype, w.shape)
		case !bytes.Equal(g.data, w.data):
			t.Errorf("%s: %s data differs", what, n)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s: extra tensor %s", what, n)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGoldenDiffusersFolder: every tensor of tiny_diffusers maps onto a
// key of the merged golden files, same shape, bit-identical data.
func TestGoldenDiffusersFolder(t *testing.T) {
	want := goldenReference(t)
	c := mustOpen(t, filepath.Join(golden.Dir(t), "tiny_diffusers"), Options{})
	if c.Kind() != KindDiffusers {
		t.Errorf("kind %v", c.Kind())
	}
	sameTensors(t, "tiny_diffusers", readAll(t, c), want)
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	for _, comp := range []string{"unet", "vae", "text_encoder", "scheduler", "tokenizer", "model_index"} {
		raw, ok := c.Config(comp)
		file := configFiles[comp]
		disk, err := os.ReadFile(filepath.Join(golden.Dir(t), "tiny_diffusers", file))
		if !ok || err != nil || !bytes.Equal(raw, disk) {
			t.Errorf("Config(%q): %v %v", comp, ok, err)
		}
	}
	var unet struct {
		BlockOut []int `json:"block_out_channels"`
	}
	raw, _ := c.Config("unet")
	if err := json.Unmarshal(raw, &unet); err != nil || len(unet.BlockOut) == 0 {
		t.Errorf("unet config: %v %v", unet, err)
	}
	if sh, _ := c.Shape(unetPrefix + "input_blocks.0.0.weight"); sh[0] != unet.BlockOut[0] {
		t.Errorf("conv_in width %v, config %v", sh, unet.BlockOut)
	}
}

// TestGoldenAsCkpt writes the golden tensors as one Lightning-style .ckpt
// (nested state_dict, metadata, EMA-free) and as a diffusers folder of .bin
// pickles, and reads both back bit-identically.
func TestGoldenAsCkpt(t *testing.T) {
	want := goldenReference(t)
	dir := golden.Dir(t)
	var all []ckpttest.Tensor
	for _, part := range goldenParts {
		all = append(all, tensorsOf(t, filepath.Join(dir, part))...)
	}
	tmp := t.TempDir()
	p := writeFile(t, tmp, "tiny.ckpt", ckpttest.Checkpoint(all, ckpttest.Options{Nested: true, Metadata: true, Prefix: "tiny"}))
	c := mustOpen(t, p, Options{})
	if c.Kind() != KindPickle {
		t.Errorf("kind %v", c.Kind())
	}
	sameTensors(t, "tiny.ckpt", readAll(t, c), want)
	if err := c.Validate(); err != nil {
		t.Error(err)
	}

	folder := filepath.Join(tmp, "pipe")
	for _, comp := range []struct{ dir, st, bin string }{
		{"unet", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"},
		{"vae", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"},
		{"text_encoder", "model.safetensors", "pytorch_model.bin"},
	} {
		ts := tensorsOf(t, filepath.Join(dir, "tiny_diffusers", comp.dir, comp.st))
		writeFile(t, folder, filepath.Join(comp.dir, comp.bin), ckpttest.Checkpoint(ts, ckpttest.Options{}))
	}
	sameTensors(t, "diffusers .bin", readAll(t, mustOpen(t, folder, Options{})), want)
}
