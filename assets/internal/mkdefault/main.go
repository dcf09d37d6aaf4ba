// Command mkdefault builds the app's default model (`make default-model`):
// it renders the emoji data set from the Debian packages, learns the
// vocabulary, trains the VAE and then the text encoder and UNet with the
// runtime's autograd, and exports a diffusers folder with the text
// encoder's covariance C for Perfusion inside. It checkpoints into
// its work folder and resumes from there when run again, so it can be
// stopped (Ctrl-C) and restarted at any time. See assets/README.md.
//
//	go run ./assets/internal/mkdefault [-work build/default-model] [-out assets/defaultmodel]
//
// With -covariance it only writes C into the folder at -out (after a run,
// or for a folder exported without it):
//
//	go run ./assets/internal/mkdefault -covariance -out assets/defaultmodel
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/perfusion-studio/perfusion/assets/internal/bpe"
	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/assets/internal/tinysd"
	"github.com/perfusion-studio/perfusion/assets/internal/train"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
)

func main() {
	if err := run(); err != nil {
		if errors.Is(err, train.ErrStopped) || errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "mkdefault: stopped; the checkpoint is saved: run again to resume")
			return
		}
		fmt.Fprintln(os.Stderr, "mkdefault:", err)
		os.Exit(1)
	}
}

func run() error {
	opt := train.DefaultOptions()
	work := flag.String("work", "build/default-model", "work folder: vocabulary, training checkpoint, samples")
	out := flag.String("out", "assets/defaultmodel", "where the finished diffusers folder is written")
	size := flag.Int("size", 32, "image size: 32, or 64 for a model four times costlier a sample")
	plan := flag.Bool("plan", false, "print the model size and FLOP estimate, then stop")
	flag.Uint64Var(&opt.Seed, "seed", opt.Seed, "random seed (a checkpoint only resumes with its own seed)")
	flag.IntVar(&opt.VAESteps, "vae-steps", opt.VAESteps, "VAE training steps")
	flag.IntVar(&opt.UNetSteps, "unet-steps", opt.UNetSteps, "text encoder + UNet training steps")
	flag.IntVar(&opt.VAEBatch, "vae-batch", opt.VAEBatch, "images per VAE step")
	flag.IntVar(&opt.UNetBatch, "unet-batch", opt.UNetBatch, "images per UNet step")
	flag.Float64Var(&opt.UNetLR, "unet-lr", opt.UNetLR, "peak learning rate of the text encoder + UNet phase (warm-up, then cosine to a tenth)")
	flag.IntVar(&opt.MaxSteps, "max-steps", 0, "stop after this many steps in this call (0: train to the end)")
	flag.IntVar(&opt.CheckpointEvery, "checkpoint-every", opt.CheckpointEvery, "steps between checkpoints")
	replicas := flag.Int("replicas", 0, "data-parallel replicas of both phases, one single-threaded engine each; they must divide both batches (0: as many as the physical cores, less where the batches do not split evenly; 1: one engine with every thread; ignored with -blas)")
	blas := flag.Bool("blas", false, "use OpenBLAS for matrix products (default: the pure-Go kernels, which do not oversubscribe the cores when spago runs backward operators concurrently)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	snapshot := flag.Bool("snapshot", false, "export the work folder's checkpoint as it stands (UNet phase or later) to -out, without training; for looking at a run in progress")
	placements := flag.Int("placements", 2, "ways each training emoji is drawn: 1, as the data set draws it (centred, full size), or more, adding moved and shrunk copies (2: the committed model; see Placement; assets/README.md, \"Views\")")
	flag.IntVar(&opt.PlainSteps, "plain-steps", 0, "with -placements above 1: the first N text encoder + UNet steps draw only placement 0 (the emoji as the data set draws them), the later ones every placement (0: every step draws every placement)")
	onlyCov := flag.Bool("covariance", false, "only compute the text encoder's covariance C of the model folder at -out and write it there (perfusion/covariance.bin), as a normal run does after its export")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *placements < 1 {
		return fmt.Errorf("-placements %d: want 1 or more", *placements)
	}
	if opt.PlainSteps < 0 || (opt.PlainSteps > 0 && *placements == 1) {
		return fmt.Errorf("-plain-steps %d with -placements %d: want 0, or steps with 2 or more placements", opt.PlainSteps, *placements)
	}
	if opt.PlainSteps > 0 {
		opt.PlainBackgrounds = len(emoji.Backgrounds()) // placement 0's indices (see dataset)
	}
	if *size != 64 && *size != 32 {
		return fmt.Errorf("-size %d: want 64 or 32", *size)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	if *onlyCov {
		return writeCovariance(ctx, *out, logf)
	}

	paths := emoji.DefaultPaths()
	if miss := paths.Missing(); len(miss) > 0 {
		return fmt.Errorf("missing %v: install fonts-noto-color-emoji, unicode-data and unicode-cldr-core (make default-model does)", miss)
	}
	t0 := time.Now()
	set, err := emoji.Build(ctx, paths, *size, nil)
	if err != nil {
		return err
	}
	logf("data: %d training emoji, %d held out, %d skipped, %d backgrounds, %d placements (the first %d UNet steps on placement 0 only), rendered in %s",
		len(set.Train), len(set.HeldOut), len(set.Skipped), len(emoji.Backgrounds()), *placements, opt.PlainSteps, time.Since(t0).Round(time.Millisecond))

	tokDir := filepath.Join(*work, "tokenizer")
	vocab, err := bpe.Learn(set.Captions(), bpe.DefaultSize, emoji.Superordinates())
	if err != nil {
		return err
	}
	if err := vocab.Write(tokDir); err != nil {
		return err
	}
	vj, err := os.ReadFile(filepath.Join(tokDir, bpe.VocabFile))
	if err != nil {
		return err
	}
	mt, err := os.ReadFile(filepath.Join(tokDir, bpe.MergesFile))
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(tokenizer.Source{Vocab: filepath.Join(tokDir, bpe.VocabFile), Merges: filepath.Join(tokDir, bpe.MergesFile)})
	if err != nil {
		return err
	}
	tok.SkipHTMLUnescape = true // as pipeline.OpenTokenizer
	cfg := tinysd.Default(len(vocab.Tokens), *size)
	if err := printPlan(cfg, opt, logf); err != nil || *plan {
		return err
	}

	opt.Checkpoint = filepath.Join(*work, "state.safetensors")
	if *snapshot {
		return exportSnapshot(ctx, cfg, opt.Checkpoint, *out, vj, mt, *size, logf)
	}
	if !*blas {
		opt.Engine = ops.NewEngine(cpu.NewGo())
		n := *replicas
		if n == 0 {
			n = replicasFor(cpu.DefaultThreads(), opt.VAEBatch, opt.UNetBatch)
		}
		if n >= 2 {
			for range n {
				c := cpu.NewGo()
				c.SetThreads(1)
				opt.Replicas = append(opt.Replicas, ops.NewEngine(c))
			}
			logf("engine: %s, %d data-parallel replicas of one thread each", opt.Engine.B.Name(), n)
		} else {
			logf("engine: %s, one model on %d threads", opt.Engine.B.Name(), opt.Engine.B.Threads())
		}
	}
	opt.Log = logf
	if err := os.MkdirAll(*work, 0o755); err != nil {
		return err
	}
	st, err := train.Run(ctx, cfg, tok, dataset{set, *placements, opt.Seed}, opt)
	if err != nil {
		return err
	}
	final, w := st.Model(cfg)
	if err := final.Export(*out, w, vj, mt); err != nil {
		return err
	}
	logf("wrote %s", *out)
	if err := writeCovariance(ctx, *out, logf); err != nil {
		return err
	}
	return samples(ctx, *out, filepath.Join(*work, "samples"), *size, logf)
}

// exportSnapshot writes the checkpoint at ckpt, as it stands, as a
// diffusers folder at out and samples from it, to look at a run in progress.
func exportSnapshot(ctx context.Context, cfg tinysd.Config, ckpt, out string, vj, mt []byte, size int, logf func(string, ...any)) error {
	st, err := train.LoadState(ckpt)
	if err != nil {
		return err
	}
	if st.Phase == train.PhaseVAE {
		return fmt.Errorf("snapshot: %s is still in the VAE phase (step %d): the UNet has not been trained yet", ckpt, st.Step)
	}
	final, w := st.Model(cfg)
	if err := final.Export(out, w, vj, mt); err != nil {
		return err
	}
	logf("wrote %s from %s (phase %s, step %d)", out, ckpt, st.Phase, st.Step)
	return samples(ctx, out, filepath.Join(out+"-samples"), size, logf)
}

// dataset adapts the emoji set to train.Data. Each emoji is drawn in
// placements ways on every background: placement 0 as the data set draws
// it (centred, full size), the others moved and shrunk by Placement. The
// trainer's background index bg stands for placement bg / B on background
// bg % B (B backgrounds), so the trainer caches and draws every placement
// as it does every background.
type dataset struct {
	s          *emoji.Set
	placements int
	seed       uint64
}

func (d dataset) Len() int         { return len(d.s.Train) }
func (d dataset) Backgrounds() int { return len(emoji.Backgrounds()) * max(1, d.placements) }
func (d dataset) Variants() int    { return emoji.NumVariants }

func (d dataset) Image(i, bg int) []float32 {
	nb := len(emoji.Backgrounds())
	it, p := d.s.Train[i], bg/nb
	if p == 0 {
		return it.Image(emoji.Backgrounds()[bg%nb])
	}
	v := Placement(d.seed, i, p, it.Glyph.Bounds().Dx())
	v.Background = bg % nb
	return emoji.CHW(emoji.Render(it.Glyph, v))
}

func (d dataset) Caption(i, bg, v int) string {
	bgs := emoji.Backgrounds()
	return emoji.Caption(d.s.Train[i].Emoji, bgs[bg%len(bgs)], v)
}

// Placement is placement p (>= 1) of training emoji i: a shift of up to
// emoji.MaxShift on each axis and a scale of 0.85 to 1, the ranges of
// the views a concept is trained on (evaldefault.ConceptViews), drawn
// from (seed, i, p). It does not mirror: some emoji point one way
// ("left arrow"), and a mirrored one would contradict its caption.
func Placement(seed uint64, i, p, side int) emoji.View {
	r := rand.New(rand.NewPCG(seed^0x706c616365, uint64(i)<<16|uint64(p)))
	shift := emoji.MaxShift(float64(side))
	return emoji.View{
		DX: (2*r.Float64() - 1) * shift, DY: (2*r.Float64() - 1) * shift,
		Scale: 1 - 0.15*r.Float64(),
	}
}

// printPlan logs parameter counts and the FLOPs of the planned steps.
func printPlan(cfg tinysd.Config, opt train.Options, logf func(string, ...any)) error {
	shapes, err := cfg.Tensors()
	if err != nil {
		return err
	}
	var n int64
	for _, sh := range shapes {
		k := int64(1)
		for _, d := range sh {
			k *= int64(d)
		}
		n += k
	}
	f := cfg.Estimate()
	// Training a layer costs about 3 forwards (forward, input and weight
	// gradients); the frozen VAE encoder of the UNet phase runs forward only.
	vaeStep := 3 * (f.VAEEncode + f.VAEDecode) * float64(opt.VAEBatch)
	unetStep := (3*(f.UNet+f.CLIP) + f.VAEEncode) * float64(opt.UNetBatch)
	logf("model: %d parameters (%.1f MB as float16); forward GFLOP per image: text %.3f, UNet %.3f, VAE encode %.3f, decode %.3f",
		n, float64(2*n)/1e6, f.CLIP/1e9, f.UNet/1e9, f.VAEEncode/1e9, f.VAEDecode/1e9)
	logf("plan: %d VAE steps x %.1f GFLOP + %d UNet steps x %.1f GFLOP = %.0f TFLOP",
		opt.VAESteps, vaeStep/1e9, opt.UNetSteps, unetStep/1e9, (float64(opt.VAESteps)*vaeStep+float64(opt.UNetSteps)*unetStep)/1e12)
	return nil
}

// samples generates a few prompts with the exported model (size x size,
// 20 DDIM steps, CFG 7.5) into dir, to look at.
func samples(ctx context.Context, model, dir string, size int, logf func(string, ...any)) error {
	p, err := pipeline.Load(ctx, model, pipeline.LoadOptions{})
	if err != nil {
		return fmt.Errorf("load the exported model: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	prompts := []string{"cat face on a white background", "red apple on a blue background", "grinning face", "evergreen tree on a red background"}
	for i, prompt := range prompts {
		start := time.Now()
		res, err := p.Generate(ctx, pipeline.Request{Prompt: prompt, Seed: uint64(i), Steps: 20, CFG: 7.5, Width: size, Height: size}, nil)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, fmt.Sprintf("%d.png", i))
		if err := writePNG(path, res.Images[0]); err != nil {
			return err
		}
		logf("sample %q -> %s in %s", prompt, path, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func writePNG(path string, img image.Image) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".sample*")
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

// replicasFor is the most replicas, at most cores, that split both
// batches evenly.
func replicasFor(cores int, batches ...int) int {
	for n := cores; n > 1; n-- {
		ok := true
		for _, b := range batches {
			ok = ok && b%n == 0
		}
		if ok {
			return n
		}
	}
	return 1
}
