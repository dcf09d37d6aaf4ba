package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// TestCheckOutput refuses output paths naming a source file under any
// name, and accepts new files and unrelated ones.
func TestCheckOutput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	model, cfg, vocab, other := write("model.ckpt"), write("config.json"), write("vocab.txt"), write("old.png")
	p := &Pipeline{Path: model, sources: []string{model, cfg, vocab}}
	refused := map[string]string{
		model:                                 "is the model file",
		cfg:                                   "a file the model was loaded from",
		vocab:                                 "a file the model was loaded from",
		filepath.Join(dir, ".", "model.ckpt"): "is the model file",
	}
	if runtime.GOOS != "windows" {
		link := filepath.Join(dir, "link.png")
		if err := os.Symlink(model, link); err != nil {
			t.Fatal(err)
		}
		hard := filepath.Join(dir, "hard.png")
		if err := os.Link(model, hard); err != nil {
			t.Fatal(err)
		}
		refused[link], refused[hard] = "is the model file", "is the model file"
	}
	for out, want := range refused {
		if err := p.CheckOutput(out); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", out, err, want)
		}
	}
	for _, out := range []string{other, filepath.Join(dir, "new.png")} {
		if err := p.CheckOutput(out); err != nil {
			t.Errorf("%s: %v", out, err)
		}
	}
}

// TestLoadSources: a loaded diffusers pipeline lists its weights, configs
// and vocabulary, and refuses them as outputs.
func TestLoadSources(t *testing.T) {
	p := tinyPipeline(t)
	src := p.Sources()
	for _, want := range []string{"unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "text_encoder/config.json"} {
		if !slices.Contains(src, filepath.Join(golden.Path(t, "tiny_diffusers"), want)) {
			t.Errorf("%s missing from %v", want, src)
		}
	}
	if len(src) == 0 || p.CheckOutput(src[len(src)-1]) == nil {
		t.Errorf("the vocabulary %v is not refused as an output", src)
	}
}

func TestFirstNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		v    []float32
		want int
	}{
		{nil, -1}, {[]float32{0, -1, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}, -1},
		{[]float32{1, nan}, 1}, {[]float32{inf, 0}, 0}, {[]float32{2, 3, -inf}, 2},
	} {
		if got := firstNonFinite(c.v); got != c.want {
			t.Errorf("%v: got %d want %d", c.v, got, c.want)
		}
	}
}

// poisoned writes the tiny golden model as one file with the first value
// of tensor name replaced by v.
func poisoned(t *testing.T, name string, v float32) string {
	t.Helper()
	merged := golden.MergeFiles(t, []string{"tiny_clip_text.safetensors", "tiny_unet.safetensors", "tiny_vae.safetensors"})
	f, err := safetensors.Open(merged)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entries []safetensors.Entry
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		entries = append(entries, safetensors.Entry{Name: n, DType: info.DType, Shape: info.Shape})
	}
	out := filepath.Join(t.TempDir(), "poisoned.safetensors")
	found := false
	err = safetensors.WriteFile(out, entries, nil, func(e safetensors.Entry, dst []byte) error {
		b, _, err := f.Bytes(e.Name)
		copy(dst, b)
		if e.Name == name {
			found = true
			switch e.DType {
			case "F32":
				binary.LittleEndian.PutUint32(dst, math.Float32bits(v))
			case "F16":
				binary.LittleEndian.PutUint16(dst, safetensors.Float32ToHalf(v))
			default:
				t.Fatalf("%s is %s", name, e.DType)
			}
		}
		return err
	})
	if err != nil || !found {
		t.Fatalf("write: %v (tensor %s found: %v)", err, name, found)
	}
	return out
}

// TestNonFiniteWeights: NaN or Inf weights stop the generation with an
// error naming the likely cause, instead of writing a black image.
func TestNonFiniteWeights(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(-1))
	type poison struct {
		tensor string
		v      float32
		where  string
	}
	cases := []poison{
		{unet.Prefix + "out.2.bias", nan, "the UNet gave NaN at its evaluation 1"},
		{unet.Prefix + "input_blocks.0.0.weight", inf, "the UNet gave"},
		{vae.Prefix + "decoder.conv_out.bias", inf, "the VAE decoder gave -Inf"},
		{clip.Prefix + "final_layer_norm.bias", nan, "the UNet gave NaN"},
	}
	if testing.Short() {
		cases = []poison{cases[0], cases[2]}
	}
	for _, c := range cases {
		opt := goldenConfigs(t)
		p, err := Load(context.Background(), poisoned(t, c.tensor, c.v), opt)
		if err != nil {
			t.Fatal(err)
		}
		side := p.SizeMultiple()
		_, err = p.Generate(context.Background(), Request{Prompt: "a cat", Seed: 1, Steps: 2, CFG: 7, Width: side, Height: side}, nil)
		if err == nil || !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), c.where) || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("%s = %v: got %v, want ErrNonFinite from %q", c.tensor, c.v, err, c.where)
		}
	}
}
