package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/concepts/photos"
	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

func trainCommand() command {
	return command{
		name:    "train",
		summary: "teach a model a Perfusion concept from 1 to 20 photos (writes a .concept file)",
		run: func(ctx context.Context, args []string) error {
			return oneLine(runTrain(ctx, args, os.Stdout, os.Stderr))
		},
	}
}

// listFlag is a flag that may repeat and takes comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// trainFlags are the settings of `perfusion train`.
type trainFlags struct {
	model, name, class, preset, out, tokenizer, cacheDir, resume string
	photos                                                       listFlag
	steps, size, batch                                           int
	seed                                                         uint64
	noFlip, fresh, attnMask                                      bool
	threads                                                      threadsFlag
}

// loadOptions are the model's load options: the vocabulary and the worker
// threads the flags ask for, with progress reported to progress.
func (g trainFlags) loadOptions(progress func(float64)) pipeline.LoadOptions {
	return pipeline.LoadOptions{Tokenizer: g.tokenizer, FallbackBPE: clipVocab(), Engine: g.threads.engine(), Progress: progress}
}

func parseTrainFlags(args []string, stderr io.Writer) (trainFlags, error) {
	var g trainFlags
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.model, "model", "", "SD 1.x checkpoint: .safetensors or .ckpt file, or diffusers folder (default: the built-in emoji model)")
	fs.StringVar(&g.name, "name", "", "the concept's name, written <name> in prompts: letters, digits, - and _ (required)")
	fs.StringVar(&g.class, "class", "", "what the subject is, one word that is one CLIP token: dog, teddy, mug, ... (required)")
	fs.Var(&g.photos, "photos", "photo files or folders (JPEG, PNG, WebP), comma-separated or repeated; 1 to 20 photos (required)")
	fs.StringVar(&g.preset, "preset", train.Quick, "quick (256 px, a few hundred samples, for a CPU) or paper (512 px, 400 steps, batch 16)")
	fs.IntVar(&g.steps, "steps", 0, "optimizer steps (0: the preset's)")
	fs.IntVar(&g.size, "size", 0, "training image side in pixels (0: the preset's, or the model's native size where that is smaller, e.g. 64 for the built-in model)")
	fs.IntVar(&g.batch, "batch", 0, "samples per step (0: the preset's)")
	fs.Uint64Var(&g.seed, "seed", 1, "seed of the photo order, timesteps and noise")
	fs.BoolVar(&g.attnMask, "attention-mask", false, "weight the loss by where the model itself attends to the --class word in each photo (the paper's zero-shot mask, without a segmentation model)")
	fs.BoolVar(&g.noFlip, "no-flip", false, "do not add mirrored photos (for text, logos and other asymmetric subjects)")
	fs.StringVar(&g.out, "out", "", "the concept file to write, NAME.concept (required)")
	fs.StringVar(&g.resume, "resume", "", "resume file (default: the output path + .resume); a run continues from it after a cancel or crash")
	fs.BoolVar(&g.fresh, "fresh", false, "ignore and replace an existing resume file")
	fs.StringVar(&g.tokenizer, "tokenizer", "", "CLIP vocabulary (default: searched beside the model, else the built-in CLIP vocabulary)")
	fs.StringVar(&g.cacheDir, "cache", "", "folder for the text-encoder covariance cache (default: $"+envDataDir+"/covariance, else the user cache folder)")
	addThreadsFlag(fs, &g.threads)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return g, err
		}
		return g, fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := g.threads.check(fs); err != nil {
		return g, err
	}
	for _, a := range fs.Args() { // photos may also follow the flags
		g.photos.Set(a)
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--name", g.name}, {"--class", g.class}, {"--photos", g.photos.String()}, {"--out", g.out}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	switch {
	case len(missing) > 0:
		return g, fmt.Errorf("%w: missing %s", errUsage, strings.Join(missing, ", "))
	case !strings.EqualFold(filepath.Ext(g.out), ".concept"):
		return g, fmt.Errorf("%w: --out %s: name the concept file *.concept", errUsage, g.out)
	case g.steps < 0 || g.size < 0 || g.batch < 0:
		return g, fmt.Errorf("%w: --steps, --size and --batch must not be negative", errUsage)
	}
	if err := conceptfile.ValidName(g.name); err != nil {
		return g, fmt.Errorf("%w: --name: %v", errUsage, err)
	}
	if g.resume == "" {
		g.resume = g.out + ".resume"
	}
	return g, nil
}

// settings applies the flags to the preset for a model of native image
// side nativeSize (train.PresetFor; 0 when not loaded yet: SD1.x's sizes).
func (g trainFlags) settings(nativeSize int) (train.Settings, error) {
	s, err := train.PresetFor(g.preset, nativeSize)
	if err != nil {
		return s, fmt.Errorf("%w: --preset: %v", errUsage, err)
	}
	if g.steps > 0 {
		s.Steps = g.steps
	}
	if g.size > 0 {
		s.Size = g.size
	}
	if g.batch > 0 {
		s.Batch = g.batch
		s.Micro = min(s.Micro, s.Batch)
		for s.Batch%s.Micro != 0 {
			s.Micro--
		}
	}
	s.Seed, s.Flip, s.AttentionMask = g.seed, !g.noFlip, g.attnMask
	return s, nil
}

// runTrain is `perfusion train`: load the model, get the covariance C of
// its text encoder (cached), train, check and write the concept file.
// Progress goes to stderr, the result line to stdout. A concept that fails
// the self-check is not written.
func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g, err := parseTrainFlags(args, stderr)
	if err != nil {
		return err
	}
	s, err := g.settings(0) // checks the flags before the model loads
	if err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Dir(g.out)); err != nil || !st.IsDir() {
		return fmt.Errorf("output folder %s does not exist", filepath.Dir(g.out))
	}
	ph, err := photos.Collect(g.photos)
	if err != nil {
		return err
	}
	if g.fresh {
		if err := os.Remove(g.resume); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	pr := newProgressPrinter(stderr)
	model, modelName, err := resolveModel(g.model, pr)
	if err != nil {
		return err
	}
	g.model = model
	pr.line(fmt.Sprintf("loading %s", g.model))
	p, err := pipeline.Load(ctx, g.model, g.loadOptions(func(f float64) { pr.percent("loading "+modelName, f) }))
	pr.done()
	if err != nil {
		return err
	}
	if s, err = g.settings(p.NativeSize()); err != nil {
		return err
	}
	msg, restore := setTrainMemoryLimit(p, s)
	defer restore()
	pr.line(msg)
	if _, err := train.SuperclassToken(p.Tokenizer, g.class); err != nil {
		return err
	}
	cv, err := textCovariance(ctx, p, g, pr)
	if err != nil {
		return err
	}
	// The hash generations check concepts against: for a diffusers folder,
	// one over all its weights (pipeline.ModelHash has none for folders).
	baseHash, err := concepts.BaseHash(ctx, g.model)
	if err != nil {
		return err
	}

	job := train.Job{
		Pipeline: p, Name: g.name, Class: g.class, Photos: ph, Metric: cv, Settings: s, Resume: g.resume,
		Progress: func(t train.Progress) {
			switch t.Stage {
			case train.StageTrain:
				pr.update(fmt.Sprintf("step %d/%d  loss %.4f  elapsed %s  ETA %s", t.Step, t.Total, t.Loss, clock(t.Elapsed), clock(t.ETA)))
			default:
				pr.update(fmt.Sprintf("%s %d/%d  elapsed %s", t.Stage, t.Step, t.Total, clock(t.Elapsed)))
			}
		},
	}
	pr.line(fmt.Sprintf("training %s (%s) on %d photos: %s preset, %d px, %d steps of %d samples; Ctrl-C stops and keeps %s",
		g.name, g.class, len(ph), s.Preset, s.Size, s.Steps, s.Batch, g.resume))
	res, err := train.Run(ctx, job)
	pr.done()
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("stopped; run the same command again to continue from %s", g.resume)
	}
	if errors.Is(err, train.ErrNotLearned) {
		return fmt.Errorf("%w; the concept was not written (run again with more --steps to continue from %s)", err, g.resume)
	}
	if err != nil {
		return err
	}
	thumb, err := photos.DecodeFile(ph[0].Path, 0)
	if err != nil {
		return err
	}
	c, err := res.ConceptFile(baseHash, cv.Key, len(ph), thumb)
	if err != nil {
		return err
	}
	if err := conceptfile.WriteFile(g.out, c); err != nil {
		return err
	}
	os.Remove(g.resume) // done: a later run with the same flags starts afresh
	fmt.Fprintf(stdout, "%s: concept <%s> (%s), loss %.4f -> %.4f on fixed samples, %s\n", g.out, g.name, g.class,
		res.Check.EvalStart, res.Check.EvalEnd, res.Elapsed.Round(time.Second))
	return nil
}

// textCovariance returns C of the model's text encoder, from the cache or
// computed from the built-in caption corpus (minutes for SD1.5) and cached.
func textCovariance(ctx context.Context, p *pipeline.Pipeline, g trainFlags, pr *progressPrinter) (*covariance.Covariance, error) {
	dir := g.cacheDir
	if d := os.Getenv(envDataDir); dir == "" && d != "" {
		dir = filepath.Join(d, "covariance")
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache folder (%v); give one with --cache", err)
		}
		dir = filepath.Join(base, "Perfusion Studio", "covariance")
	}
	cv, st, err := covariance.ForPipeline(ctx, p, captions.Default(), dir, covariance.Options{Progress: func(c covariance.Progress) {
		pr.update(fmt.Sprintf("text covariance: %d/%d captions  ETA %s", c.Done, c.Total, clock(c.ETA)))
	}})
	pr.done()
	if err != nil {
		return nil, err
	}
	if st.Problem != nil {
		pr.line(fmt.Sprintf("covariance cache: %v", st.Problem))
	}
	if !st.Hit {
		pr.line("text covariance: " + cv.Summary())
	}
	return cv, nil
}
