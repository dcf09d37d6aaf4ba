package perf

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// tinyConfigs reads the golden tiny models' configs.
func tinyConfigs(t *testing.T) (clip.Config, unet.Config, vae.Config) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(golden.Path(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cc, err := clip.ConfigFromJSON(read("tiny_clip_text_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := unet.ConfigFromJSON(read("tiny_unet_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vae.ConfigFromJSON(read("tiny_vae_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return cc, uc, vc
}

// The tensor list derived from the loaders is exactly that of the golden
// tiny files (less CLIP's position_ids buffer, which loaders ignore).
func TestExpectedTensorsTiny(t *testing.T) {
	cc, uc, vc := tinyConfigs(t)
	got, err := ExpectedTensors(cc, uc, vc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{}
	for _, name := range []string{"tiny_clip_text.safetensors", "tiny_unet.safetensors", "tiny_vae.safetensors"} {
		f := golden.Open(t, name)
		for _, n := range f.Names() {
			info, _ := f.Info(n)
			want[n] = info.Shape
		}
	}
	delete(want, clip.Prefix+"embeddings.position_ids")
	if !reflect.DeepEqual(got, want) {
		for n, s := range want {
			if !reflect.DeepEqual(got[n], s) {
				t.Errorf("%s: derived %v, golden %v", n, got[n], s)
			}
		}
		for n := range got {
			if _, ok := want[n]; !ok {
				t.Errorf("%s derived, not in the golden files", n)
			}
		}
	}
}

// For the SD15 configs the list is that of a real SD1.5 checkpoint
// (shared/sd15_tensors.txt, used here only as a test reference).
func TestExpectedTensorsSD15(t *testing.T) {
	text := golden.SD15Tensors(t)
	got, err := ExpectedTensors(clip.SD15(), unet.SD15(), vae.SD15())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, prefix := range []string{unet.Prefix, vae.Prefix, clip.Prefix} {
		want, err := blocks.ParseShapeList(string(text), prefix)
		if err != nil {
			t.Fatal(err)
		}
		delete(want, "embeddings.position_ids")
		for n, s := range want {
			if g, ok := got[prefix+n]; !ok || !reflect.DeepEqual(g, s) {
				t.Errorf("%s%s: derived %v, listing %v", prefix, n, g, s)
			}
		}
		total += len(want)
	}
	if len(got) != total {
		t.Errorf("derived %d tensors, the listing has %d", len(got), total)
	}
	var params int
	for _, s := range got {
		params += tensor.Numel(s)
	}
	t.Logf("SD1.5: %d tensors, %.1fM parameters", len(got), float64(params)/1e6)
}

// A random tiny checkpoint loads through the pipeline and generates; its
// weights have the documented scales.
func TestWriteRandomLoads(t *testing.T) {
	cc, uc, vc := tinyConfigs(t)
	tensors, err := ExpectedTensors(cc, uc, vc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "random.safetensors")
	if err := WriteRandom(context.Background(), path, tensors, "F16", 3); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := unet.Prefix + "input_blocks.1.0.in_layers.2.weight"
	w, shape, err := f.Float32(name) // [C, C, 3, 3]
	if info, _ := f.Info(name); err != nil || info.DType != "F16" {
		t.Fatalf("%s: %v, %v", name, info, err)
	}
	var v float64
	for _, x := range w {
		v += float64(x) * float64(x)
	}
	v /= float64(len(w))
	if fanIn := float64(shape[1] * shape[2] * shape[3]); math.Abs(v*fanIn-1) > 0.1 {
		t.Errorf("weight variance %g, want 1/fan_in = %g", v, 1/fanIn)
	}
	if g, _, _ := f.Float32(vae.Prefix + "decoder.norm_out.weight"); math.Abs(float64(g[0])-1) > 0.03 {
		t.Errorf("norm gain %g, want about 1", g[0])
	}

	if err := writeByteVocab(dir); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(context.Background(), path, pipeline.LoadOptions{Tokenizer: dir, CLIP: &cc, UNet: &uc, VAE: &vc})
	if err != nil {
		t.Fatal(err)
	}
	m := p.SizeMultiple()
	res, err := p.Generate(context.Background(), pipeline.Request{Prompt: "a cat, b", Steps: 2, CFG: 7, Width: m, Height: m}, nil)
	if err != nil || len(res.Images) != 1 {
		t.Fatalf("generate: %v", err)
	}
	for _, x := range res.Decoded.Data() {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatal("random model decodes to NaN/Inf")
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteRandom(ctx, filepath.Join(dir, "x.safetensors"), tensors, "F32", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.safetensors")); !os.IsNotExist(err) {
		t.Errorf("cancelled write left a file: %v", err)
	}
}

func TestByteVocab(t *testing.T) {
	dir := t.TempDir()
	if err := writeByteVocab(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tokenizer.Source{Vocab: filepath.Join(dir, "vocab.json"), Merges: filepath.Join(dir, "merges.txt")})
	if err != nil {
		t.Fatal(err)
	}
	if ids := tok.Encode("ab, c"); len(ids) != 4 || tok.Decode(ids) != "ab , c " {
		t.Errorf("Encode = %v (%q)", ids, tok.Decode(ids))
	}
	if tok.BOS() != 512 || tok.EOS() != 513 {
		t.Errorf("BOS %d EOS %d", tok.BOS(), tok.EOS())
	}
}

// countingBackend counts the operations of every GEMM, split into linear
// layers (B transposed: weights [out, in]) and convolutions.
type countingBackend struct {
	backend.Backend
	mu           sync.Mutex
	linear, conv float64
}

func (c *countingBackend) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, cc []float32, ldc int) {
	c.mu.Lock()
	if transB {
		c.linear += 2 * float64(m) * float64(n) * float64(k)
	} else {
		c.conv += 2 * float64(m) * float64(n) * float64(k)
	}
	c.mu.Unlock()
	c.Backend.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

// UNetFLOPs against a real forward pass of the tiny UNet: the GEMMs add up
// to at least the formula's convolution and linear work (padded-plane
// tricks compute a little more); attention matches the scores of every
// transformer at the resolution it ran at.
func TestUNetFLOPs(t *testing.T) {
	_, uc, _ := tinyConfigs(t)
	cb := &countingBackend{Backend: cpu.New()}
	f := golden.Open(t, "tiny_unet.safetensors")
	e := ops.NewEngine(cb)
	e.NoWinograd = true // the formula counts direct convolutions
	m, err := unet.Load(e, weights.Safetensors(f), uc)
	if err != nil {
		t.Fatal(err)
	}
	const b, tok = 2, 77
	// Even sides, then odd ones: each Downsample rounds up and each Upsample
	// resizes to the level above, which the formula must follow.
	for _, size := range [][2]int{{32, 24}, {13, 11}} {
		h, w := size[0], size[1]
		cb.linear, cb.conv = 0, 0
		shapes := map[string][]int{}
		m.Trace = func(name string, out tensor.Tensor) { shapes[name] = out.Shape() }
		x := make([]float32, b*uc.InChannels*h*w)
		cond := make([]float32, b*tok*uc.ContextDim)
		if _, err := m.Forward(context.Background(), tensor.MustNew(x, b, uc.InChannels, h, w), []float32{10, 900}, tensor.MustNew(cond, b, tok, uc.ContextDim)); err != nil {
			t.Fatal(err)
		}
		got := UNetFLOPs(uc, b, h, w, tok)
		// Every linear layer runs as a B-transposed GEMM; 1x1 convolutions on
		// tokens (proj_in/proj_out) may run so too, so the B-transposed work is
		// at least the Linear count, and all GEMM work together is at least the
		// formula's (padded-plane tricks compute a little more).
		if cb.linear < got.Linear {
			t.Errorf("%dx%d: B-transposed GEMMs %g, less than the formula's linear layers %g", h, w, cb.linear, got.Linear)
		}
		if r := (cb.linear + cb.conv) / (got.Linear + got.Conv); r < 1 || r > 1.5 {
			t.Errorf("%dx%d: GEMMs %g (linear %g + conv %g), formula %g (ratio %.3f)", h, w, cb.linear+cb.conv, cb.linear, cb.conv, got.Linear+got.Conv, r)
		}
		var attn float64
		for _, ca := range m.CrossAttentions() {
			module := ca.Name[:strings.Index(ca.Name, ".transformer_blocks.")]
			s, ok := shapes[module] // [B, C, H, W]
			if !ok {
				t.Fatalf("no trace of %s", module)
			}
			n, inner := float64(s[2]*s[3]), float64(ca.ToK.Dim(0))
			attn += 4 * b * n * (n + tok) * inner // self (N x N) and cross (N x T) scores, each q kᵀ and weights · v
		}
		if attn != got.Attention {
			t.Errorf("%dx%d: attention from the traced shapes %g, formula %g", h, w, attn, got.Attention)
		}
		t.Logf("tiny UNet %dx%d latents, batch %d: %.3g conv (GEMMs %.3g), %.3g linear, %.3g attention", h, w, b, got.Conv, cb.conv, got.Linear, got.Attention)
	}

	// SD1.5 at 512x512 (64x64 latents), batch 1: the commonly quoted
	// ~0.8 TFLOP (~0.4 T multiply-adds) per forward pass.
	sd := UNetFLOPs(unet.SD15(), 1, 64, 64, 77)
	if sd.Total() < 0.6e12 || sd.Total() > 1e12 {
		t.Errorf("SD1.5 512x512 forward: %.3g FLOPs", sd.Total())
	}
	t.Logf("SD1.5 UNet 512x512 batch 1: %.1f GFLOP (conv %.1f, linear %.1f, attention %.1f)", sd.Total()/1e9, sd.Conv/1e9, sd.Linear/1e9, sd.Attention/1e9)
}

func TestPeakRSS(t *testing.T) {
	// Earlier tests in this process may have left the peak above the
	// resident size, and then touching 64 MiB raises it by less. Start
	// from a reset peak where the system allows one; elsewhere only the
	// bounds that hold whatever came before are checked.
	reset := ResetPeakRSS() == nil
	rss, err := PeakRSS()
	if err != nil {
		t.Skip(err)
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	after, err := PeakRSS()
	if err != nil || rss <= 0 || after < rss || after < 64<<20 {
		t.Errorf("peak RSS %d, after touching 64 MiB %d (%v)", rss, after, err)
	}
	if reset && after < rss+32<<20 {
		t.Errorf("peak RSS %d after a reset, %d after touching 64 MiB", rss, after)
	}
	runtime.KeepAlive(big)
}

// After a reset the peak is the current resident size again, below a
// peak that memory since returned to the system had raised.
func TestResetPeakRSS(t *testing.T) {
	big := make([]byte, 128<<20)
	for i := range big {
		big[i] = 1
	}
	peak, err := PeakRSS()
	if err != nil {
		t.Skip(err)
	}
	runtime.KeepAlive(big)
	big = nil
	debug.FreeOSMemory()
	if err := ResetPeakRSS(); err != nil {
		t.Skip(err)
	}
	after, err := PeakRSS()
	if err != nil || after > peak-64<<20 {
		t.Errorf("peak RSS %d before freeing 128 MiB, %d after the reset (%v)", peak, after, err)
	}
}

func TestWriteTable(t *testing.T) {
	rep := &Report{Backend: "cpu/test", Threads: 2, DType: "F16", FileBytes: 2.1e9, Write: 10 * time.Second, Load: 5 * time.Second,
		PeakGFLOPs: 100, Text: 300 * time.Millisecond, Reps: 2, Mapped: 2e9, HugeMapped: 1.5e9,
		Rows: []Row{
			{Size: 256, UNet1: time.Second, UNet2: 2 * time.Second, Decode: time.Second, FLOPs1: 100e9, FLOPs2: 100e9, PeakRSS: 5e9,
				UNetRSS: 4.5e9, DecodeRSS: 5e9},
			{Size: 512, UNet1: 4 * time.Second, UNet2: 8 * time.Second, Decode: 4 * time.Second, FLOPs1: 400e9, FLOPs2: 800e9,
				Step: Usage{Wall: 8 * time.Second, User: 14 * time.Second, Sys: 2 * time.Second, AllocBytes: 12.5e6, Mallocs: 321, GCs: 3,
					MinorFaults: 77, MajorFaults: 0}, DecodeUsage: Usage{MinorFaults: -1},
				Spin: Usage{Wall: time.Second, User: 1800 * time.Millisecond}},
		}}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"GEMM peak 100.0 GFLOP/s", "256x256", "512x512", "50%", "5.00 GB", "4.50 GB / 5.00 GB", "n/a", "41.30 s", "164.30 s",
		"mapped float16 weights: 2.00 GB, read through 2 MiB pages: 1.50 GB"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"512x512 CFG step: 12.5 MB allocated in 321 objects, 3 GC, CPU 16.00 s (sys 2.00 s) = 200% of one core, 77 minor / 0 major page faults",
		"512x512 VAE decode: 0.0 MB allocated in 0 objects, 0 GC\n", "after 1 warm-up run(s)",
		"512x512 control, right after: 2 threads that never wait got 180% of one core"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lines lack %q:\n%s", want, out)
		}
	}
	table, _, _ := strings.Cut(out, "\nwhat the last run")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	last, prev := lines[len(lines)-1], lines[len(lines)-2]
	if len(last) != len(prev) {
		t.Errorf("rows not aligned:\n%s\n%s", prev, last)
	}
}

func TestRunRejectsSizes(t *testing.T) {
	for _, s := range []int{0, 100, 4096} {
		if _, err := Run(context.Background(), Options{Sizes: []int{s}}); err == nil {
			t.Errorf("size %d accepted", s)
		}
	}
}
