package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

func TestLoadProgress(t *testing.T) {
	var got []float64
	_, err := Load(context.Background(), golden.Path(t, "tiny_diffusers"), LoadOptions{Progress: func(f float64) { got = append(got, f) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 10 || got[0] != 0 || got[len(got)-1] != 1 {
		t.Fatalf("progress %v: want many reports from 0 to 1", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			t.Fatalf("progress went back: %v", got)
		}
	}
}

func TestLoadCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	last := 0.0
	p, err := Load(ctx, golden.Path(t, "tiny_diffusers"), LoadOptions{Progress: func(f float64) {
		last = f
		if f > 0.3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || p != nil {
		t.Fatalf("Load = %v, %v; want context.Canceled", p, err)
	}
	if last >= 1 {
		t.Errorf("loading went on to %g after cancelling", last)
	}
	if _, err := Load(ctx, golden.Path(t, "tiny_diffusers"), LoadOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: %v", err)
	}
}

// Files that are not complete SD1.x models are refused with the
// checkpoint package's explanation, before any weights are read.
func TestLoadRefusesNonModels(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "notes.safetensors")
	if err := os.WriteFile(junk, []byte("hello, not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	vaeOnly := golden.MergeFiles(t, []string{"tiny_vae.safetensors"})
	noText := golden.MergeFiles(t, []string{"tiny_unet.safetensors", "tiny_vae.safetensors"})
	for _, path := range []string{junk, vaeOnly, noText, filepath.Join(dir, "missing.ckpt")} {
		reads := 0
		_, err := Load(context.Background(), path, LoadOptions{Progress: func(float64) { reads++ }})
		if err == nil || !strings.HasPrefix(err.Error(), "pipeline: ") {
			t.Errorf("%s: error %v", filepath.Base(path), err)
			continue
		}
		if path != junk && !strings.HasSuffix(path, ".ckpt") && !errors.Is(err, checkpoint.ErrFormat) {
			t.Errorf("%s: error %v does not wrap checkpoint.ErrFormat", filepath.Base(path), err)
		}
		if reads != 0 {
			t.Errorf("%s: weights read before refusing", filepath.Base(path))
		}
		t.Logf("%s: %v", filepath.Base(path), err)
	}
	// The head count of the tiny single file cannot be detected: without
	// its config the load works but gives SD1.5's heads. A wrong override
	// is a strict-loader error naming the tensors.
	single := golden.MergeFiles(t, []string{"tiny_clip_text.safetensors", "tiny_unet.safetensors", "tiny_vae.safetensors"})
	opt := goldenConfigs(t)
	detected, err := Load(context.Background(), single, LoadOptions{Tokenizer: opt.Tokenizer})
	if err != nil {
		t.Fatal(err)
	}
	if detected.UNet.Config.NumHeads == opt.UNet.NumHeads {
		t.Logf("detection found the tiny UNet's %d heads", opt.UNet.NumHeads)
	}
	uc := *opt.UNet
	uc.ContextDim++
	opt.UNet = &uc
	if _, err := Load(context.Background(), single, opt); err == nil || !strings.Contains(err.Error(), "attn2.to_k") {
		t.Errorf("wrong UNet config: %v", err)
	}
}

func TestTokenizerLocations(t *testing.T) {
	gd := golden.Dir(t)
	diff := filepath.Join(gd, "tiny_diffusers")
	bpe := filepath.Join(gd, tokenizer.BPEFile)
	pair := tokenizer.Source{Vocab: filepath.Join(diff, "tokenizer", tokenizer.VocabFile), Merges: filepath.Join(diff, "tokenizer", tokenizer.MergesFile)}
	for _, tc := range []struct {
		path string
		want tokenizer.Source
	}{
		{bpe, tokenizer.Source{BPE: bpe}},
		{gd, tokenizer.Source{BPE: bpe}},
		{pair.Vocab, pair},
		{pair.Merges, pair},
		{filepath.Join(diff, "tokenizer"), pair},
		{diff, pair},
	} {
		got, err := tokenizerAt(tc.path)
		if err != nil || got != tc.want {
			t.Errorf("tokenizerAt(%s) = %v, %v; want %v", tc.path, got, err, tc.want)
		}
	}
	for _, bad := range []string{filepath.Join(gd, "nope.txt.gz"), t.TempDir()} {
		if _, err := tokenizerAt(bad); err == nil {
			t.Errorf("tokenizerAt(%s) succeeded", bad)
		}
	}
	// A single file with no vocabulary beside it and none given.
	single := golden.MergeFiles(t, []string{"tiny_clip_text.safetensors", "tiny_unet.safetensors", "tiny_vae.safetensors"})
	opt := goldenConfigs(t)
	opt.Tokenizer = ""
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	t.Setenv("HF_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	var nf *tokenizer.NotFoundError
	if _, err := Load(context.Background(), single, opt); !errors.As(err, &nf) {
		t.Errorf("no vocabulary: %v, want a *tokenizer.NotFoundError", err)
	}
	opt.DataDir = gd // the app's data folder holds one
	if _, err := Load(context.Background(), single, opt); err != nil {
		t.Errorf("vocabulary in DataDir: %v", err)
	}
	testFallbackBPE(t, single, opt)
}

// testFallbackBPE checks LoadOptions.FallbackBPE on a single file with no
// vocabulary beside it: used when none is found or given, never before.
func testFallbackBPE(t *testing.T, single string, opt LoadOptions) {
	gz, err := os.ReadFile(golden.Path(t, tokenizer.BPEFile))
	if err != nil {
		t.Fatal(err)
	}
	const junk = "not a vocabulary"
	want, err := tokenizer.Load(tokenizer.Source{BPE: golden.Path(t, tokenizer.BPEFile)})
	if err != nil {
		t.Fatal(err)
	}
	prompt := "a photograph of an astronaut riding a horse"

	opt.DataDir = ""
	opt.FallbackBPE = string(gz)
	p, err := Load(context.Background(), single, opt)
	if err != nil {
		t.Fatalf("with a fallback vocabulary: %v", err)
	}
	if got := p.Tokenizer.IDs77(prompt); !slices.Equal(got, want.IDs77(prompt)) || !p.Tokenizer.SkipHTMLUnescape {
		t.Errorf("fallback tokenizer: IDs77 %v, want %v (SkipHTMLUnescape %v)", got, want.IDs77(prompt), p.Tokenizer.SkipHTMLUnescape)
	}
	if src := p.Sources(); len(src) != 1 || src[0] != single {
		t.Errorf("Sources() = %v, want only the checkpoint (the fallback is no file)", src)
	}

	// A vocabulary found (here in DataDir) or given wins: the junk fallback
	// would fail to load.
	opt.FallbackBPE = junk
	if _, err := Load(context.Background(), single, opt); err == nil || !strings.Contains(err.Error(), "built-in") {
		t.Errorf("junk fallback used: %v, want an error naming the built-in vocabulary", err)
	}
	found := opt
	found.DataDir = golden.Dir(t)
	if _, err := Load(context.Background(), single, found); err != nil {
		t.Errorf("vocabulary in DataDir with a junk fallback: %v", err)
	}
	given := opt
	given.Tokenizer = golden.Path(t, tokenizer.BPEFile)
	if _, err := Load(context.Background(), single, given); err != nil {
		t.Errorf("explicit vocabulary with a junk fallback: %v", err)
	}
	given.Tokenizer = filepath.Join(t.TempDir(), "missing.txt.gz")
	if _, err := Load(context.Background(), single, given); err == nil || !strings.Contains(err.Error(), "missing.txt.gz") {
		t.Errorf("a missing explicit vocabulary: %v, want its error, not the fallback", err)
	}

	// A text encoder with fewer embeddings than CLIP's vocabulary has.
	small := opt
	cc := *opt.CLIP
	cc.VocabSize = 1000
	small.CLIP, small.FallbackBPE = &cc, string(gz)
	if _, err := Load(context.Background(), single, small); err == nil || !strings.Contains(err.Error(), "built-in CLIP vocabulary") {
		t.Errorf("fallback larger than the text encoder: %v", err)
	}

	// No checkpoint: the fallback alone.
	tok, err := OpenTokenizer("", LoadOptions{FallbackBPE: string(gz)})
	if err != nil || !slices.Equal(tok.IDs77(prompt), want.IDs77(prompt)) {
		t.Errorf("OpenTokenizer with only a fallback: %v", err)
	}
}

// halfMap is a source holding one float16 tensor.
type halfMap struct{ weights.Map }

func (halfMap) DType(string) string { return "F16" }
func (halfMap) Half(name string) ([]uint16, []int, error) {
	return []uint16{0x3c00, 0x4000}, []int{2}, nil
}

// The progress source passes float16 reads through (so loaders may keep
// weights as float16) and counts them.
func TestProgressSourceHalf(t *testing.T) {
	src := halfMap{weights.Map{"m.w": {Data: []float32{1, 2}, Shape: []int{2}}}}
	var got []float64
	ps := newProgressSource(context.Background(), src, func(f float64) { got = append(got, f) }, "m.")
	if d := ps.DType("m.w"); d != "F16" {
		t.Errorf("DType %q", d)
	}
	if h, _, err := ps.Half("m.w"); err != nil || len(h) != 2 || h[0] != 0x3c00 {
		t.Errorf("Half = %v, %v", h, err)
	}
	if len(got) != 2 || got[1] != 1 {
		t.Errorf("progress %v, want 0 then 1", got)
	}
	plain := newProgressSource(context.Background(), src.Map, nil, "m.")
	if d := plain.DType("m.w"); d != "F32" && d != "" {
		t.Errorf("DType of a plain source %q", d)
	}
	if _, _, err := plain.Half("m.w"); err == nil && plain.DType("m.w") == "F32" {
		t.Error("Half of a float32-only source succeeded")
	}
}

func TestNativeSize(t *testing.T) {
	p := tinyPipeline(t)
	raw, err := os.ReadFile(filepath.Join(golden.Path(t, "tiny_diffusers"), "unet", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		SampleSize int `json:"sample_size"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.SampleSize == 0 {
		t.Fatalf("unet/config.json has no sample_size (%v)", err)
	}
	if want := cfg.SampleSize * p.latentFactor(); p.NativeSize() != want {
		t.Fatalf("NativeSize = %d, want sample_size %d x factor %d = %d", p.NativeSize(), cfg.SampleSize, p.latentFactor(), want)
	}
	p.UNet.Config.SampleSize = 0
	if got := p.NativeSize(); got != 512 {
		t.Fatalf("NativeSize without sample_size = %d, want 512", got)
	}
}
