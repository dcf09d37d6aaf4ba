package tinysd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/internal/bpe"
	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

func smallVocab(t testing.TB) (*bpe.Vocab, []byte, []byte) {
	t.Helper()
	v, err := bpe.Learn([]string{"grinning face on a red background", "cat face, animal mammal"}, 600, []string{"cat"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := v.Write(dir); err != nil {
		t.Fatal(err)
	}
	vj, _ := os.ReadFile(filepath.Join(dir, bpe.VocabFile))
	mt, _ := os.ReadFile(filepath.Join(dir, bpe.MergesFile))
	return v, vj, mt
}

// Init -> Export -> checkpoint.Open and pipeline.Load: the folder is a
// diffusers pipeline whose names convert back to every CompVis key, with
// the float16-rounded values, the same configs, and at most 40 MB.
func TestExportRoundTrip(t *testing.T) {
	v, vj, mt := smallVocab(t)
	c := Default(len(v.Tokens), 64)
	c.VAE.ScaleFactor = 0.5
	w, err := c.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := c.Export(dir, w, vj, mt); err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if got, want := ck.Names(), w.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("folder has %d tensors, model %d (first %q vs %q)", len(got), len(want), got[:3], want[:3])
	}
	for _, name := range w.Names() {
		got, shape, err := ck.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(shape, w[name].Shape) {
			t.Fatalf("%s: shape %v, want %v", name, shape, w[name].Shape)
		}
		h := make([]uint16, len(got))
		want := make([]float32, len(got))
		weights.Float32sToHalf(h, w[name].Data)
		weights.HalfToFloat32s(want, h)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: values differ after the round trip", name)
		}
	}
	p, err := pipeline.Load(context.Background(), dir, pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.UNet.Config, c.UNet) || !reflect.DeepEqual(p.CLIP.Config, c.CLIP) || !reflect.DeepEqual(p.VAE.Config, c.VAE) {
		t.Errorf("configs read back differ:\n%v\n%v\n%v", p.UNet.Config, p.CLIP.Config, p.VAE.Config)
	}
	if p.Tokenizer.VocabSize() != len(v.Tokens) {
		t.Errorf("tokenizer has %d ids, want %d", p.Tokenizer.VocabSize(), len(v.Tokens))
	}
	// The default vocabulary is 4096 ids: 3500 more embedding rows.
	var size int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	full := size + int64(2*(bpe.DefaultSize-len(v.Tokens))*c.CLIP.HiddenSize)
	if full > 40<<20 {
		t.Errorf("folder would be %d bytes with the default vocabulary, want <= 40 MiB", full)
	}
	t.Logf("folder: %.1f MB (with the default vocabulary %.1f MB)", float64(size)/1e6, float64(full)/1e6)
	// Export over an existing folder replaces it.
	if err := c.Export(dir, w, vj, bytes.Clone(mt)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + ".old"); !os.IsNotExist(err) {
		t.Errorf("old folder left behind: %v", err)
	}
}

func TestDiffusersNameErrors(t *testing.T) {
	c := Default(600, 64)
	for _, k := range []string{"nothing", "model.diffusion_model.input_blocks.x.0.in_layers.0.weight", "first_stage_model.encoder.down.0.attn.0.q.weight"} {
		if _, _, _, err := c.DiffusersName(k); err == nil {
			t.Errorf("%q: no error", k)
		}
	}
}

// The VAE count of a one-level model, by hand: conv_in 3->32, a 32->32
// ResnetBlock (two 3x3 convs), the middle block (two ResnetBlocks and
// attention: q, k, v, out and the 64x64 scores), conv_out 32->8, at 8x8.
func TestVAEFLOPs(t *testing.T) {
	c := Default(600, 8)
	c.VAE.ChMult = []int{1}
	px := 64.0
	conv := func(cin, cout float64) float64 { return 2 * cin * cout * 9 * px }
	res := 2 * conv(32, 32)
	want := conv(3, 32) + res + 2*res + 2*(4*32*32*px+2*px*px*32) + conv(32, 8)
	if got := vaeFLOPs(c, true); got != want {
		t.Errorf("encoder FLOPs %v, want %v", got, want)
	}
	e := Default(4096, 64).Estimate()
	if e.UNet <= 0 || e.CLIP <= 0 || e.VAEDecode <= e.VAEEncode {
		t.Errorf("estimate %+v", e)
	}
}
