package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
)

// small is a few CompVis-named tensors of several dtypes.
func small() []ckpttest.Tensor {
	return []ckpttest.Tensor{
		{Name: "model.diffusion_model.out.2.bias", DType: "F32", Shape: []int{2}, Data: f32(1.5, -2)},
		{Name: "first_stage_model.post_quant_conv.bias", DType: "F16", Shape: []int{3}, Data: []byte{0x00, 0x3c, 0x01, 0x00, 0x00, 0x7c}},
		{Name: "cond_stage_model.transformer.text_model.final_layer_norm.bias", DType: "BF16", Shape: []int{1, 2}, Data: []byte{0x80, 0x3f, 0xc0, 0xff}},
		{Name: "cond_stage_model.transformer.text_model.embeddings.position_ids", DType: "I64", Shape: []int{1, 2},
			Data: binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 0), 1)},
	}
}

// TestReadSingleFiles reads the same tensors from .safetensors and .ckpt
// (also misnamed), with exact conversions.
func TestReadSingleFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]Kind{
		writeFile(t, dir, "m.safetensors", ckpttest.Safetensors(small())):                           KindSafetensors,
		writeFile(t, dir, "m.ckpt", ckpttest.Checkpoint(small(), ckpttest.Options{Nested: true})):   KindPickle,
		writeFile(t, dir, "misnamed.ckpt", ckpttest.Safetensors(small())):                           KindSafetensors,
		writeFile(t, dir, "misnamed.safetensors", ckpttest.Checkpoint(small(), ckpttest.Options{})): KindPickle,
	}
	for p, kind := range files {
		c := mustOpen(t, p, Options{})
		if c.Kind() != kind || c.Path() != p || len(c.Names()) != 4 {
			t.Errorf("%s: kind %v names %v", p, c.Kind(), c.Names())
		}
		v, shape, err := c.Float32("first_stage_model.post_quant_conv.bias")
		if err != nil || fmt.Sprint(v, shape) != "[1 5.9604645e-08 +Inf] [3]" {
			t.Errorf("%s: F16 -> %v %v %v", p, v, shape, err)
		}
		h, _, err := c.Half("first_stage_model.post_quant_conv.bias")
		if err != nil || fmt.Sprint(h) != "[15360 1 31744]" {
			t.Errorf("%s: Half %v %v", p, h, err)
		}
		v, _, err = c.Float32("cond_stage_model.transformer.text_model.final_layer_norm.bias")
		if err != nil || fmt.Sprint(v) != "[1 NaN]" {
			t.Errorf("%s: BF16 -> %v %v", p, v, err)
		}
		v, _, err = c.Float32("cond_stage_model.transformer.text_model.embeddings.position_ids")
		if err != nil || fmt.Sprint(v) != "[0 1]" || c.DType("cond_stage_model.transformer.text_model.embeddings.position_ids") != "I64" {
			t.Errorf("%s: I64 -> %v %v", p, v, err)
		}
		if _, _, err := c.Half("model.diffusion_model.out.2.bias"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: Half of F32: %v", p, err)
		}
		if _, _, err := c.Float32("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
			t.Errorf("%s: missing tensor: %v", p, err)
		}
		if c.Has("nope") || c.DType("nope") != "" {
			t.Errorf("%s: phantom tensor", p)
		}
		if _, err := c.Architecture(); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: a partial model must not pass Architecture: %v", p, err)
		}
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	good := ckpttest.Safetensors(small())
	lying := append([]byte(nil), good...)
	copy(lying[8:], strings.Replace(string(lying[8:8+binary.LittleEndian.Uint64(lying)]), `"data_offsets":[0,`, `"data_offsets":[2,`, 1))
	var sys ckpttest.Pickler
	sys.Op(0x80, 2).Global("os", "system").Str("echo pwned").Op(0x85, 'R', '.')
	ck := ckpttest.Checkpoint(small(), ckpttest.Options{})

	mkdir := func(name string, files map[string][]byte) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(p, 0o755)
		for f, b := range files {
			writeFile(t, p, f, b)
		}
		return p
	}
	unet := ckpttest.Safetensors([]ckpttest.Tensor{ckpttest.Zeros("conv_in.weight", "F32", 2, 4, 3, 3)})
	cases := []struct {
		name, path, want string
		kind             error
	}{
		{"missing file", filepath.Join(dir, "absent.safetensors"), "no such file", nil},
		{"empty file", writeFile(t, dir, "empty.safetensors", nil), "too short", ErrFormat},
		{"png renamed", writeFile(t, dir, "img.safetensors", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...)), "PNG image", ErrFormat},
		{"truncated safetensors", writeFile(t, dir, "cut.safetensors", good[:len(good)-5]), "truncated", ErrFormat},
		{"header lies about offsets", writeFile(t, dir, "lie.safetensors", lying), "header corrupt", ErrFormat},
		{"truncated ckpt", writeFile(t, dir, "cut.ckpt", ck[:len(ck)-30]), "damaged zip", ErrFormat},
		{"malicious ckpt", writeFile(t, dir, "evil.ckpt", ckpttest.Zip(sys.B.Bytes(), nil, ckpttest.Options{})), `refusing to load global "os.system"`, ErrUnsupported},
		{"legacy torch file", writeFile(t, dir, "old.ckpt", append([]byte{0x80, 2, 0x8a, 10}, make([]byte, 64)...)), "legacy PyTorch", ErrUnsupported},
		{"empty folder", mkdir("empty", nil), "has no unet/, vae/ or text_encoder/ weights", ErrFormat},
		{"bad config", mkdir("badcfg", map[string][]byte{"unet/config.json": []byte("{"), "unet/diffusion_pytorch_model.safetensors": unet}), "not valid JSON", ErrFormat},
		{"sdxl folder", mkdir("sdxl", map[string][]byte{"model_index.json": []byte(`{"_class_name":"StableDiffusionXLPipeline"}`)}), "SDXL is not supported yet", ErrUnsupported},
		{"unknown unet tensor", mkdir("odd", map[string][]byte{"unet/diffusion_pytorch_model.safetensors": ckpttest.Safetensors([]ckpttest.Tensor{
			ckpttest.Zeros("add_embedding.linear_1.weight", "F32", 2, 2)})}), "cannot place (add_embedding.linear_1.weight...)", ErrUnsupported},
		{"broken component", mkdir("broken", map[string][]byte{"vae/diffusion_pytorch_model.safetensors": good[:20]}), "vae", ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ck, err := Open(c.path)
			if err == nil {
				ck.Close()
				t.Fatalf("accepted, want %q", c.want)
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "checkpoint:") || !strings.Contains(err.Error(), c.want) || (c.kind != nil && !errors.Is(err, c.kind)) {
				t.Errorf("got %q, want a checkpoint: error containing %q wrapping %v", err, c.want, c.kind)
			}
			if errors.Is(err, ErrFormat) && errors.Is(err, ErrUnsupported) {
				t.Errorf("%q is both bad and unsupported", err)
			}
		})
	}
}

// TestNormalise renames old CLIP names and reshapes linear VAE attention.
func TestNormalise(t *testing.T) {
	c := fromShapes(map[string]spec{
		"cond_stage_model.transformer.embeddings.token_embedding.weight": {"F32", []int{10, 4}},
		"cond_stage_model.transformer.encoder.layers.0.mlp.fc1.weight":   {"F32", []int{8, 4}},
		"cond_stage_model.transformer.final_layer_norm.weight":           {"F32", []int{4}},
		"first_stage_model.decoder.mid.attn_1.q.weight":                  {"F32", []int{8, 8}},
		"first_stage_model.encoder.mid.attn_1.proj_out.weight":           {"F32", []int{8, 8, 1, 1}},
		"first_stage_model.encoder.mid.attn_1.q.bias":                    {"F32", []int{8}},
	})
	want := map[string][]int{
		textPrefix + "embeddings.token_embedding.weight":       {10, 4},
		textPrefix + "encoder.layers.0.mlp.fc1.weight":         {8, 4},
		textPrefix + "final_layer_norm.weight":                 {4},
		"first_stage_model.decoder.mid.attn_1.q.weight":        {8, 8, 1, 1},
		"first_stage_model.encoder.mid.attn_1.proj_out.weight": {8, 8, 1, 1},
		"first_stage_model.encoder.mid.attn_1.q.bias":          {8},
	}
	if err := c.Require(want); err != nil || len(c.Names()) != len(want) {
		t.Errorf("%v (names %v)", err, c.Names())
	}
	if v, shape, err := c.Float32("first_stage_model.decoder.mid.attn_1.q.weight"); err != nil || len(v) != 64 || len(shape) != 4 {
		t.Errorf("reshaped read: %d values %v %v", len(v), shape, err)
	}
}

// TestDiffusersVariants: fp16 variant files, preference for full precision,
// sharded weights.
func TestDiffusersVariants(t *testing.T) {
	dir := t.TempDir()
	half := []ckpttest.Tensor{{Name: "conv_in.weight", DType: "F16", Shape: []int{1, 1, 1, 2}, Data: []byte{0x00, 0x3c, 0x00, 0xc0}}}
	full := []ckpttest.Tensor{{Name: "conv_in.weight", DType: "F32", Shape: []int{1, 1, 1, 2}, Data: f32(1, -2)}}
	writeFile(t, dir, "a/unet/diffusion_pytorch_model.fp16.safetensors", ckpttest.Safetensors(half))
	c := mustOpen(t, filepath.Join(dir, "a"), Options{})
	h, shape, err := c.Half(unetPrefix + "input_blocks.0.0.weight")
	if err != nil || fmt.Sprint(h, shape) != "[15360 49152] [1 1 1 2]" {
		t.Errorf("fp16 variant: %v %v %v", h, shape, err)
	}
	writeFile(t, dir, "a/unet/diffusion_pytorch_model.safetensors", ckpttest.Safetensors(full))
	if c := mustOpen(t, filepath.Join(dir, "a"), Options{}); c.DType(unetPrefix+"input_blocks.0.0.weight") != "F32" {
		t.Error("fp16 variant preferred over full precision")
	}
	// text encoder in two shards
	te := []ckpttest.Tensor{ckpttest.Zeros("text_model.final_layer_norm.weight", "F32", 4), ckpttest.Zeros("text_model.final_layer_norm.bias", "F32", 4)}
	writeFile(t, dir, "b/text_encoder/model-00001-of-00002.safetensors", ckpttest.Safetensors(te[:1]))
	writeFile(t, dir, "b/text_encoder/model-00002-of-00002.safetensors", ckpttest.Safetensors(te[1:]))
	writeFile(t, dir, "b/text_encoder/model.safetensors.index.json", []byte(`{"weight_map": {
		"text_model.final_layer_norm.weight": "model-00001-of-00002.safetensors",
		"text_model.final_layer_norm.bias": "model-00002-of-00002.safetensors"}}`))
	c = mustOpen(t, filepath.Join(dir, "b"), Options{})
	if err := c.Prefix(textPrefix).Require(map[string][]int{"final_layer_norm.weight": {4}, "final_layer_norm.bias": {4}}); err != nil {
		t.Error(err)
	}
}

// TestConcurrentReads reads every tensor from several goroutines (run with
// -race).
func TestConcurrentReads(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{
		writeFile(t, dir, "m.safetensors", ckpttest.Safetensors(small())),
		writeFile(t, dir, "m.ckpt", ckpttest.Checkpoint(small(), ckpttest.Options{Deflate: true})),
	} {
		c := mustOpen(t, p, Options{})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, n := range c.Names() {
					if _, _, err := c.Float32(n); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
}
