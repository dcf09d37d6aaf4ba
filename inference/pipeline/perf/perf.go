// Package perf measures the SD1.5 pipeline's stages on this machine: it
// writes a checkpoint of random weights with SD1.5's exact tensor set (taken
// from the model loaders for the SD15() configs, so nothing has to be
// downloaded or shipped) into a temporary folder, loads it through
// pipeline.Load, deletes it, and times the text encoder, the UNet (batch 1,
// and batch 2 = one classifier-free-guidance sampling step) and the VAE
// decoder at chosen image sizes. The UNet's speed is reported in GFLOP/s
// (operations counted analytically, see UNetFLOPs) and as a fraction of the
// GEMM peak measured in the same run (inference/backend/bench).
//
// Random weights give the same work as real ones: the timings are those of
// a real SD1.5 model, the images are noise.
package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// Options configure a benchmark run. The zero value measures 256 and 512
// pixel images, best of 2, from float16 weights in os.TempDir().
type Options struct {
	Sizes []int  // square image sides in pixels (multiples of SizeMultiple); nil means 256, 512
	Reps  int    // timed repetitions of each measurement, best kept; 0 means 2
	DType string // weights on disk: "F16" (default, as SD1.5 is distributed) or "F32"
	Dir   string // parent of the temporary folder; "" is os.TempDir()
	// Engine runs the models; nil means ops.CPU().
	Engine *ops.Engine
	// Half says which layer weights are held as float16
	// (pipeline.LoadOptions.Half).
	Half blocks.HalfMode
	// Keep leaves the checkpoint and its vocabulary in their folder
	// (Bench.Path) instead of deleting them after loading, e.g. for
	// `perfusion generate` runs on the same weights.
	Keep bool
	// Loaded, when set, is called once the pipeline is loaded, before any
	// measurement: the program sets its memory policy there (see
	// pipeline.MemoryBudget); this package leaves process-wide state alone.
	Loaded func(p *pipeline.Pipeline)
	// Log, when set, receives one line per stage as the run goes.
	Log func(msg string)
}

func (o Options) withDefaults() Options {
	if o.Sizes == nil {
		o.Sizes = []int{256, 512}
	}
	if o.Reps <= 0 {
		o.Reps = 2
	}
	if o.DType == "" {
		o.DType = "F16"
	}
	if o.Engine == nil {
		o.Engine = ops.CPU()
	}
	return o
}

func (o Options) log(format string, args ...any) {
	if o.Log != nil {
		o.Log(fmt.Sprintf(format, args...))
	}
}

// Bench is a loaded random SD1.5 pipeline with fixed inputs.
type Bench struct {
	P         *pipeline.Pipeline
	Path      string // the checkpoint; removed after loading unless Options.Keep
	DType     string
	FileBytes int64         // size of the checkpoint that was written
	Write     time.Duration // writing it
	Load      time.Duration // pipeline.Load of it
	LoadUsage Usage         // what loading cost
	LiveHeap  int64         // Go heap in use after loading (weights, mostly), after a GC
	LoadRSS   int64         // process peak resident memory after loading (0: unknown)
	enc       []pipeline.Encoding
	noise     *rand.Rand
}

// benchPrompt is what the text encoder is timed on (its length does not
// matter: every chunk is 77 tokens).
func benchPrompt() []string { return []string{"", "a photograph of an astronaut riding a horse"} }

// Prepare writes the random checkpoint (with a byte-level vocabulary beside
// it, enough to tokenize) into a new temporary folder under opt.Dir, loads
// it and removes the folder again (unless opt.Keep, or on a failure).
func Prepare(ctx context.Context, opt Options) (b *Bench, err error) {
	opt = opt.withDefaults()
	dir, err := os.MkdirTemp(opt.Dir, "perfusion-bench-")
	if err != nil {
		return nil, fmt.Errorf("perf: %w", err)
	}
	defer func() {
		if err != nil || !opt.Keep {
			os.RemoveAll(dir)
		}
	}()
	tensors, err := ExpectedTensors(clip.SD15(), unet.SD15(), vae.SD15())
	if err != nil {
		return nil, err
	}
	var size int64
	for _, s := range tensors {
		size += int64(tensor.Numel(s))
	}
	width := map[string]int64{"F16": 2, "F32": 4}[opt.DType]
	path := filepath.Join(dir, "random-sd15.safetensors")
	opt.log("writing a random SD1.5 checkpoint: %d tensors, %.2f GB of %s, in %s", len(tensors), float64(size*width)/1e9, opt.DType, dir)
	b = &Bench{Path: path, DType: opt.DType, noise: rand.New(rand.NewPCG(5, 6))}
	start := time.Now()
	if err := WriteRandom(ctx, path, tensors, opt.DType, 1); err != nil {
		return nil, err
	}
	b.Write = time.Since(start)
	if st, err := os.Stat(path); err == nil {
		b.FileBytes = st.Size()
	}
	if err := writeByteVocab(dir); err != nil {
		return nil, err
	}
	opt.log("settling it in the page cache as a file read from disk is")
	if err := Settle(path); err != nil {
		opt.log("%v (the mapped weights may be read through 4 KiB pages)", err)
	}
	opt.log("loading it")
	snap := takeSnapshot()
	b.P, err = pipeline.Load(ctx, path, pipeline.LoadOptions{Tokenizer: dir, Engine: opt.Engine, Half: opt.Half})
	if err != nil {
		return nil, err
	}
	b.LoadUsage = snap.since()
	b.Load = b.LoadUsage.Wall
	if opt.Loaded != nil {
		opt.Loaded(b.P)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.LiveHeap = int64(ms.HeapAlloc)
	b.LoadRSS, _ = PeakRSS()
	if b.enc, err = b.P.EncodePrompts(ctx, benchPrompt(), pipeline.TextOptions{}); err != nil {
		return nil, err
	}
	return b, nil
}

// PeakGFLOPs measures the engine's GEMM peak (bench.PeakGFLOPs).
func (b *Bench) PeakGFLOPs() float64 { return bench.PeakGFLOPs(b.P.Engine.B) }

// EncodeText runs the text encoder on a prompt and a negative prompt (one
// batch of 2 x 77 tokens), as every generation does once.
func (b *Bench) EncodeText(ctx context.Context) error {
	_, err := b.P.EncodePrompts(ctx, benchPrompt(), pipeline.TextOptions{})
	return err
}

// latentSide is the latent side of a size-pixel image.
func (b *Bench) latentSide(size int) int { return size >> (len(b.P.VAE.Config.ChMult) - 1) }

// UNet runs one UNet forward pass on batch (1, or 2 = the CFG batch of
// negative and prompt) of size x size pixel images' latents.
func (b *Bench) UNet(ctx context.Context, size, batch int) error {
	c, s := b.P.UNet.Config.InChannels, b.latentSide(size)
	x := b.randn(batch * c * s * s) // [B, C, h, w]
	ts := make([]float32, batch)
	var ctxData []float32
	for i := range batch {
		ts[i] = 500
		j := i % 2 // negative, prompt: the CFG batch
		if batch == 1 {
			j = 1
		}
		ctxData = append(ctxData, b.enc[j].Hidden.Data()...)
	}
	e := b.enc[0].Hidden
	_, err := b.P.UNet.Forward(ctx, tensor.MustNew(x, batch, c, s, s), ts, tensor.MustNew(ctxData, batch, e.Dim(1), e.Dim(2)))
	return err
}

// Decode runs the VAE decoder on one latent of a size x size image, after
// releasing the UNet's recycled activations as Generate does before it
// decodes.
func (b *Bench) Decode(ctx context.Context, size int) error {
	b.P.UNet.ReleaseActivations()
	c, s := b.P.VAE.Config.EmbedDim, b.latentSide(size)
	_, err := b.P.VAE.DecodeLatents(ctx, tensor.MustNew(b.randn(c*s*s), 1, c, s, s)) // [1, C, h, w]
	return err
}

// UNetFLOPs counts one UNet forward pass of the loaded model (see the
// package function UNetFLOPs).
func (b *Bench) UNetFLOPs(size, batch int) FLOPs {
	s := b.latentSide(size)
	return UNetFLOPs(b.P.UNet.Config, batch, s, s, b.enc[0].Hidden.Dim(1))
}

func (b *Bench) randn(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(b.noise.NormFloat64())
	}
	return v
}

// writeByteVocab writes a vocab.json + merges.txt of CLIP's 512 byte
// symbols and its two special tokens, without merges: a valid (if
// long-winded) tokenizer for the random model, so no real vocabulary is
// needed. Its ids differ from CLIP's, which does not change any timing.
func writeByteVocab(dir string) error {
	vocab := map[string]int{}
	for i, r := range byteSymbols() {
		vocab[string(r)] = i
		vocab[string(r)+"</w>"] = 256 + i
	}
	vocab["<|startoftext|>"] = 512
	vocab["<|endoftext|>"] = 513
	js, err := json.Marshal(vocab)
	if err != nil {
		return fmt.Errorf("perf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), js, 0o644); err != nil {
		return fmt.Errorf("perf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\n"), 0o644); err != nil {
		return fmt.Errorf("perf: %w", err)
	}
	return nil
}

// byteSymbols is GPT-2/CLIP's bytes_to_unicode in vocabulary order: the
// printable Latin-1 bytes map to themselves, the other 68 to U+0100 on.
func byteSymbols() []rune {
	var out []rune
	printable := func(b int) bool {
		return ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF)
	}
	for b := range 256 {
		if printable(b) {
			out = append(out, rune(b))
		}
	}
	n := 0
	for b := range 256 {
		if !printable(b) {
			out = append(out, rune(256+n))
			n++
		}
	}
	return out
}
