package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/assets/evaldefault"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

func evalDefaultCommand() command {
	return command{
		name:    "eval-default",
		summary: "measure the default (emoji) model: text conditioning, backgrounds, personalization",
		run: func(ctx context.Context, args []string) error {
			return oneLine(runEvalDefault(ctx, args, os.Stdout, os.Stderr))
		},
	}
}

// evalFlags are the settings of `perfusion eval-default`.
type evalFlags struct {
	model, work, images string
	quick               bool
	seed                uint64
	skip                map[string]bool // parts left out: text, background, personal
	conceptSteps        int             // 0: the Quick preset's
	concepts            []string        // held-out emoji to personalize (nil: the evaluation set)
	samples, views      int             // generations per personalization prompt, views per concept (0: the defaults)
	cfg                 float64         // guidance scale
	centredViews        bool            // views without shifts and scaling
	steps               int             // sampling steps
	threads             threadsFlag
}

// loadOptions are the model's load options: the worker threads the flags
// ask for, and the built-in CLIP vocabulary when none is found.
func (g evalFlags) loadOptions() pipeline.LoadOptions {
	return pipeline.LoadOptions{FallbackBPE: clipVocab(), Engine: g.threads.engine()}
}

// evalParts are the parts --skip may name.
var evalParts = []string{"text", "background", "personal"}

func parseEvalFlags(args []string, stderr io.Writer) (evalFlags, error) {
	var g evalFlags
	fs := flag.NewFlagSet("eval-default", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.model, "model", "", "diffusers folder of an emoji model made by make default-model (default: the embedded default model)")
	fs.StringVar(&g.work, "work", "", "folder for the classifier, C and the concepts' views, kept between runs (default: the user cache folder's perfusion/eval-default)")
	fs.StringVar(&g.images, "images", "", "also write every generated image into this folder")
	fs.BoolVar(&g.quick, "quick", false, "a smaller, faster evaluation (fewer prompts, two concepts); its counts are below the targets'")
	fs.Uint64Var(&g.seed, "seed", 1, "seed of every choice, noise and training")
	fs.Float64Var(&g.cfg, "cfg", evaldefault.DefaultCFG, "classifier-free guidance scale of every generation")
	fs.IntVar(&g.steps, "steps", evaldefault.DefaultSteps, "sampling steps of every generation")
	fs.IntVar(&g.conceptSteps, "concept-steps", 0, "optimizer steps of each concept's training (default: the Quick preset's), to tune the preset")
	fs.IntVar(&g.samples, "samples", 0, "generations per personalization prompt (default 8, quick 2)")
	fs.IntVar(&g.views, "views", 0, "training views per concept, 3 to 5 (default 5)")
	fs.BoolVar(&g.centredViews, "centred-views", false, "train each concept on views that vary only by background and mirroring, centred at full size as the model's data set draws its emoji, instead of also shifted by up to 3/64 of the side and scaled by 0.85 to 1 (an experiment: see assets/README.md)")
	conceptList := fs.String("concepts", "", `comma-separated held-out emoji to personalize (default: the evaluation set, `+
		strings.Join(evaldefault.EvalConcepts(), ", ")+`), or "tuning" for the other held-out emoji, to tune on`)
	skip := fs.String("skip", "", "comma-separated parts to leave out: "+strings.Join(evalParts, ", "))
	addThreadsFlag(fs, &g.threads)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return g, err
		}
		return g, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return g, fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	if g.cfg < 1 || g.cfg > 30 {
		return g, fmt.Errorf("%w: --cfg %g: want 1 to 30", errUsage, g.cfg)
	}
	if g.steps < 1 || g.steps > 150 {
		return g, fmt.Errorf("%w: --steps %d: want 1 to 150", errUsage, g.steps)
	}
	if g.conceptSteps < 0 {
		return g, fmt.Errorf("%w: --concept-steps %d: want 0 (the preset's) or more", errUsage, g.conceptSteps)
	}
	if g.samples < 0 {
		return g, fmt.Errorf("%w: --samples %d: want 1 or more", errUsage, g.samples)
	}
	if g.views != 0 && (g.views < 3 || g.views > 5) {
		return g, fmt.Errorf("%w: --views %d: want 3 to 5", errUsage, g.views)
	}
	list, err := parseConceptList(*conceptList)
	if err != nil {
		return g, err
	}
	g.concepts = list
	g.skip = map[string]bool{}
	for _, part := range strings.Split(*skip, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !slices.Contains(evalParts, part) {
			return g, fmt.Errorf("%w: --skip %q: want some of %s", errUsage, part, strings.Join(evalParts, ", "))
		}
		g.skip[part] = true
	}
	if err := g.threads.check(fs); err != nil {
		return g, err
	}
	if g.work == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return g, fmt.Errorf("no cache folder (%v); give one with --work", err)
		}
		g.work = filepath.Join(base, "perfusion", "eval-default")
	}
	return g, nil
}

// parseConceptList parses --concepts: "" (nil: the default), "tuning"
// (evaldefault.TuningConcepts) or comma-separated held-out emoji names.
func parseConceptList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "tuning" {
		return evaldefault.TuningConcepts(), nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.Join(strings.Fields(name), " ")
		if name == "" {
			continue
		}
		if !slices.Contains(evaldefault.HeldOutNames(), name) {
			return nil, fmt.Errorf("%w: --concepts %q is not a held-out emoji; want some of %s, or \"tuning\"", errUsage, name, strings.Join(evaldefault.HeldOutNames(), ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// runEvalDefault is `perfusion eval-default`: load the model, run
// evaldefault.Run with the app's generation defaults, print the report to
// stdout (progress to stderr).
func runEvalDefault(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g, err := parseEvalFlags(args, stderr)
	if err != nil {
		return err
	}
	pr := newProgressPrinter(stderr)
	model, _, err := resolveModel(g.model, pr)
	if err != nil {
		return err
	}
	pr.line(fmt.Sprintf("loading %s", model))
	p, err := pipeline.Load(ctx, model, g.loadOptions())
	pr.done()
	if err != nil {
		return err
	}
	rep, err := evaldefault.Run(ctx, p, evaldefault.Options{
		WorkDir: g.work, Quick: g.quick, Seed: g.seed, ImageDir: g.images,
		ConceptSteps: g.conceptSteps, Concepts: g.concepts, Samples: g.samples, Views: g.views, CentredViews: g.centredViews,
		SkipText: g.skip["text"], SkipBackground: g.skip["background"], SkipPersonal: g.skip["personal"],
		Sampler: app.DefaultSampler, Steps: g.steps, CFG: float32(g.cfg),
		Progress: func(e evaldefault.Progress) {
			pr.update(fmt.Sprintf("%s %d/%d  %s  elapsed %s", e.Stage, e.Done, e.Total, e.Detail, clock(e.Elapsed)))
		},
	})
	pr.done()
	if err != nil {
		return err
	}
	_, err = rep.WriteTo(stdout)
	return err
}
