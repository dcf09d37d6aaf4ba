package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

func generateCommand() command {
	return command{
		name:    "generate",
		summary: "make an image from a prompt with an SD 1.x model (writes a PNG)",
		run: func(ctx context.Context, args []string) error {
			return oneLine(runGenerate(ctx, args, os.Stdout, os.Stderr))
		},
	}
}

// generateFlags are the settings of `perfusion generate`.
type generateFlags struct {
	model, negative, sampler, tokenizer, out string
	prompts                                  repeated // one, or one per image
	seed                                     seedValue
	steps, width, height, clipSkip, batch    int
	cfg                                      float64
	emphasis, longPrompts                    bool
	concepts                                 conceptFlags
	threads                                  threadsFlag
}

// repeated is a flag that may be given several times (--prompt,
// --concept, --gate), each value whole.
type repeated []string

func (l *repeated) String() string { return strings.Join(*l, " | ") }

func (l *repeated) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// images is how many images the flags ask for.
func (g generateFlags) images() int { return max(g.batch, len(g.prompts)) }

// outputs are the PNG paths of the images: --out itself for one image,
// else --out numbered from 1 (fox.png: fox-1.png, fox-2.png, ...; zero-
// padded to the widest number).
func (g generateFlags) outputs() []string {
	n := g.images()
	if n == 1 {
		return []string{g.out}
	}
	ext := filepath.Ext(g.out)
	base := strings.TrimSuffix(g.out, ext)
	width := len(strconv.Itoa(n))
	outs := make([]string, n)
	for i := range outs {
		outs[i] = fmt.Sprintf("%s-%0*d%s", base, width, i+1, ext)
	}
	return outs
}

// request is the generation the flags ask for.
func (g generateFlags) request(seed uint64) pipeline.Request {
	r := pipeline.Request{
		Negative: g.negative, Seed: seed, Steps: g.steps, CFG: float32(g.cfg), Sampler: g.sampler,
		Width: g.width, Height: g.height, ClipSkip: g.clipSkip, Emphasis: g.emphasis, LongPrompts: g.longPrompts,
	}
	if len(g.prompts) == 1 {
		r.Prompt, r.BatchSize = g.prompts[0], g.batch
	} else {
		r.Prompts = g.prompts
	}
	return r
}

// loadOptions are the model's load options: the vocabulary and the worker
// threads the flags ask for, with progress reported to progress.
func (g generateFlags) loadOptions(progress func(float64)) pipeline.LoadOptions {
	return pipeline.LoadOptions{Tokenizer: g.tokenizer, FallbackBPE: clipVocab(), Engine: g.threads.engine(), Progress: progress}
}

func parseGenerateFlags(args []string, stderr io.Writer) (generateFlags, error) {
	var g generateFlags
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.model, "model", "", "SD 1.x checkpoint: .safetensors or .ckpt file, or diffusers folder (default: the built-in emoji model, 32x32)")
	fs.Var(&g.prompts, "prompt", "what to draw (required); repeat it to give each image of a batch its own prompt")
	fs.StringVar(&g.negative, "negative", "", "negative prompt")
	seed := fs.String("seed", "-1", "random seed, 0 to 2^64-1 (the noise uses its low 32 bits, as torch does); -1 picks one below 2^32 and prints it")
	fs.IntVar(&g.steps, "steps", 20, "sampling steps")
	fs.Float64Var(&g.cfg, "cfg", 7.5, "classifier-free guidance scale")
	fs.StringVar(&g.sampler, "sampler", "dpmpp_2m_karras", "sampler: ddim, euler, euler_a, euler_karras, dpmpp_2m, dpmpp_2m_karras, lcm (or its display name, e.g. \"Euler a\")")
	fs.IntVar(&g.width, "width", 0, "image width in pixels (a multiple of 8 for SD 1.x; default: the model's native size, 512 for SD 1.x)")
	fs.IntVar(&g.height, "height", 0, "image height in pixels (a multiple of 8 for SD 1.x; default: the model's native size)")
	fs.StringVar(&g.tokenizer, "tokenizer", "", "CLIP vocabulary (bpe_simple_vocab_16e6.txt.gz, vocab.json + merges.txt, or a folder); default: searched beside the model, else the built-in CLIP vocabulary")
	fs.IntVar(&g.clipSkip, "clip-skip", 0, "text encoder layers to skip from the end (2 = penultimate layer)")
	fs.BoolVar(&g.emphasis, "emphasis", true, "parse the web UI's emphasis syntax: (word:1.2), [word], BREAK")
	fs.BoolVar(&g.longPrompts, "long-prompts", true, "encode prompts over 75 tokens in 75-token chunks instead of truncating")
	fs.IntVar(&g.batch, "batch", 1, fmt.Sprintf("images made together from one noise draw of the seed, 1 to %d; several are written as OUT-1.png, OUT-2.png, ...", pipeline.MaxBatch))
	fs.StringVar(&g.out, "out", "", "output PNG file (required)")
	fs.Var(&g.concepts.files, "concept", "a .concept file to use, written <name> in the prompt (repeat for several)")
	fs.Var(&g.concepts.gates, "gate", "a concept's gate: NAME=BETA,TAU or NAME=BETA (β 0 to 1: likeness ↔ prompt balance; τ 0.01 to 1); default: the file's (repeatable)")
	fs.StringVar(&g.concepts.multi, "multi", "sum", "how several concepts combine: sum or exact")
	fs.StringVar(&g.concepts.lock, "lock", "local", "concept key locking: local or global")
	fs.StringVar(&g.concepts.cacheDir, "cache", "", "folder that caches the text covariance C concepts need (default: the user cache folder's perfusion/covariance)")
	addThreadsFlag(fs, &g.threads)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return g, err
		}
		return g, fmt.Errorf("%w: %v", errUsage, err)
	}
	var missing []string
	prompt := ""
	if len(g.prompts) > 0 {
		prompt = "set"
	}
	for _, f := range []struct{ name, v string }{{"--prompt", prompt}, {"--out", g.out}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if err := g.threads.check(fs); err != nil {
		return g, err
	}
	seedErr := g.seed.parse(*seed)
	switch {
	case len(missing) > 0:
		return g, fmt.Errorf("%w: missing %s", errUsage, strings.Join(missing, ", "))
	case fs.NArg() > 0:
		return g, fmt.Errorf("%w: unexpected argument %q (quote the prompt: --prompt \"a cat\")", errUsage, fs.Arg(0))
	case !strings.EqualFold(filepath.Ext(g.out), ".png"):
		return g, fmt.Errorf("%w: --out %s: the output is a PNG, name it *.png", errUsage, g.out)
	case seedErr != nil:
		return g, fmt.Errorf("%w: --seed %s: %v", errUsage, *seed, seedErr)
	case g.steps < 1:
		return g, fmt.Errorf("%w: --steps %d: want at least 1", errUsage, g.steps)
	case g.batch < 1 || g.batch > pipeline.MaxBatch:
		return g, fmt.Errorf("%w: --batch %d: want 1 to %d", errUsage, g.batch, pipeline.MaxBatch)
	case len(g.prompts) > 1 && g.batch != 1 && g.batch != len(g.prompts):
		return g, fmt.Errorf("%w: --batch %d with %d prompts: give one prompt, or one per image", errUsage, g.batch, len(g.prompts))
	case len(g.prompts) > pipeline.MaxBatch:
		return g, fmt.Errorf("%w: %d prompts: at most %d, one per image", errUsage, len(g.prompts), pipeline.MaxBatch)
	}
	// The exact size rule depends on the model (checked once it is loaded);
	// these fail before minutes of loading.
	for _, s := range []struct {
		name string
		v    int
	}{{"--width", g.width}, {"--height", g.height}} {
		if s.v < 0 || s.v%8 != 0 || s.v > pipeline.MaxSide { // 0: the model's native size
			return g, fmt.Errorf("%w: %s %d: want a multiple of 8 from 8 to %d", errUsage, s.name, s.v, pipeline.MaxSide)
		}
	}
	name, err := pipeline.ParseSampler(g.sampler)
	if err != nil {
		return g, fmt.Errorf("%w: --sampler: %v", errUsage, err)
	}
	g.sampler = name
	return g, nil
}

// runGenerate is `perfusion generate`: load the model, generate the images
// (one, or a batch) and write each with its settings. Progress goes to
// stderr, a result line per image to stdout. Nothing is written unless the
// images are complete.
func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g, err := parseGenerateFlags(args, stderr)
	if err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Dir(g.out)); err != nil || !st.IsDir() {
		return fmt.Errorf("output folder %s does not exist", filepath.Dir(g.out))
	}
	conceptFiles, gates, err := readConcepts(g.concepts, append(slices.Clone(g.prompts), g.negative), stderr)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	seed := g.seed.v
	if g.seed.random {
		// Below 2^32, as the web UI picks, so that tools which take only
		// 32-bit seeds reproduce the image too.
		seed = uint64(rand.Uint32())
		fmt.Fprintf(stderr, "seed %d\n", seed)
	}
	pr := newProgressPrinter(stderr)
	model, modelName, err := resolveModel(g.model, pr)
	if err != nil {
		return err
	}
	g.model = model

	// The web UI's "Model hash", read beside the loading (the file is read
	// once from disk, then from the page cache).
	hashCtx, stopHash := context.WithCancel(ctx)
	defer stopHash()
	type hashed struct {
		hash string
		err  error
	}
	hash := make(chan hashed, 1)
	go func() {
		h, err := pipeline.ModelHash(hashCtx, g.model)
		hash <- hashed{h, err}
	}()

	pr.line(fmt.Sprintf("loading %s", g.model))
	start := time.Now()
	p, err := pipeline.Load(ctx, g.model, g.loadOptions(func(f float64) { pr.percent("loading "+modelName, f) }))
	pr.done()
	if err != nil {
		return err
	}
	for _, out := range g.outputs() {
		if err := p.CheckOutput(out); err != nil {
			return err
		}
	}
	pr.line(fmt.Sprintf("loaded in %.1f s", time.Since(start).Seconds()))
	if g.width == 0 {
		g.width = p.NativeSize()
	}
	if g.height == 0 {
		g.height = p.NativeSize()
	}
	msg, restore := setMemoryLimit(p, g.width, g.height, g.images())
	defer restore()
	pr.line(msg)

	set, uses, err := conceptEdit(ctx, g.concepts, conceptFiles, gates, g.model, p, pr)
	if err != nil {
		return err
	}
	req := g.request(seed)
	if set != nil {
		req.Edit = set
	}
	res, err := p.Generate(ctx, req, func(s pipeline.Progress) {
		pr.update(fmt.Sprintf("step %d/%d  elapsed %s  ETA %s", s.Step, s.Total, clock(s.Elapsed), clock(s.ETA)))
	})
	pr.done()
	if err != nil {
		return err
	}
	settings := export.Settings{
		NegativePrompt: g.negative, Steps: g.steps, Sampler: pipeline.SamplerLabel(g.sampler),
		CFGScale: g.cfg, Seed: seed, Width: g.width, Height: g.height,
		ModelName: modelName,
	}
	select {
	case h := <-hash:
		if h.err != nil {
			pr.line(fmt.Sprintf("no model hash in the PNG: %v", h.err))
		}
		settings.ModelHash = h.hash
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.clipSkip > 1 {
		settings.Extra = append(settings.Extra, [2]string{"Clip skip", strconv.Itoa(g.clipSkip)})
	}
	settings.Extra = append(settings.Extra, export.ConceptParameters(uses, g.concepts.multi)...)
	steps := fmt.Sprintf("%d steps", g.steps)
	if run := len(res.Timesteps); run != g.steps {
		steps += fmt.Sprintf(" (%d run)", run)
	}
	outs := g.outputs()
	for i, img := range res.Images {
		s := settings
		s.Prompt = g.prompts[min(i, len(g.prompts)-1)]
		if len(outs) > 1 { // the web UI's batch fields; Batch pos counts from 0
			s.Extra = append(slices.Clone(s.Extra), [2]string{"Batch size", strconv.Itoa(len(outs))}, [2]string{"Batch pos", strconv.Itoa(i)})
		}
		if err := export.SavePNG(outs[i], img, s); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %dx%d, seed %d, %s %s, CFG %g, %.1f s\n", outs[i], g.width, g.height, seed, steps,
			settings.Sampler, g.cfg, res.Elapsed.Seconds())
	}
	return nil
}

// progressPrinter shows progress on stderr: one line rewritten in place
// (carriage return) on a terminal, one line per update otherwise.
type progressPrinter struct {
	w        io.Writer
	terminal bool
	width    int  // length of the line on screen
	open     bool // a rewritten line is on screen without its newline
	shown    int  // last percentage shown by percent, -1 for none
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	p := &progressPrinter{w: w, shown: -1}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// update shows s as the current state.
func (p *progressPrinter) update(s string) {
	if !p.terminal {
		fmt.Fprintln(p.w, s)
		return
	}
	pad := max(p.width-len(s), 0)
	fmt.Fprintf(p.w, "\r%s%s", s, strings.Repeat(" ", pad))
	p.width, p.open = len(s), true
}

// percent shows a fraction done: every whole percent on a terminal, every
// 10% otherwise.
func (p *progressPrinter) percent(label string, f float64) {
	pct := int(100 * f)
	step := 10
	if p.terminal {
		step = 1
	}
	if pct/step == p.shown/step && p.shown >= 0 {
		return
	}
	p.shown = pct
	p.update(fmt.Sprintf("%s: %3d%%", label, pct))
}

// line prints s on a line of its own.
func (p *progressPrinter) line(s string) {
	p.done()
	fmt.Fprintln(p.w, s)
}

// done ends an in-place line.
func (p *progressPrinter) done() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open, p.width = false, 0
	}
}

// clock formats a duration as m:ss (or h:mm:ss).
func clock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// seedValue is the --seed flag: 0 to 2^64-1, or -1 for a random seed.
// torch.manual_seed takes 64-bit seeds but seeds its Mersenne Twister with
// the low 32 bits, so seeds that differ only above bit 31 give the same
// noise; the full value is what the PNG records.
type seedValue struct {
	v      uint64
	random bool
}

// parse reads the flag's text.
func (s *seedValue) parse(v string) error {
	if v == "-1" {
		*s = seedValue{random: true}
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return errors.New("want 0 to 18446744073709551615, or -1 for a random seed")
	}
	*s = seedValue{v: n}
	return nil
}
