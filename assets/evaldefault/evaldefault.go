// Package evaldefault measures the quality of the default model (an
// emoji model of the Stable Diffusion 1.x family, assets/README.md) the
// way issue 8 asks, each figure with its method:
//
//   - a small CNN (Classifier), trained here with the runtime's autograd
//     on the training emoji under random backgrounds, shifts, scales and
//     mirrors, predicts an image's emoji subgroup;
//   - text conditioning: held-in captions across many subgroups are
//     generated at the model's native size with the app's sampler, steps
//     and guidance, and classified: the share classified into the
//     prompted subgroup;
//   - background: "<name> on a red background" prompts: the share of
//     images whose border is nearest the data set's red;
//   - personalization: held-out emoji are trained as Perfusion concepts
//     (concepts/train, Quick preset at the native size) from a few
//     augmented views; generations of <concept> and of the superordinate
//     word alone are compared by their mean distance, in the
//     classifier's penultimate features, to the held-out emoji's own
//     rendering; and "<concept> on a red background" must stay red.
//
// Every random choice comes from Options.Seed, so a run is repeatable up
// to float rounding. The package is not imported by the app.
package evaldefault

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// The app's default generation settings (app.DefaultSampler and the new
// composition's steps and guidance), used unless Options say otherwise.
const (
	DefaultSampler = "dpmpp_2m_karras"
	DefaultSteps   = 20
	DefaultCFG     = 7.5
)

// Targets of issue 8.
const (
	TargetText       = 0.5 // text-conditioning accuracy
	TargetBackground = 0.8 // red background share
	TargetTrainTime  = 60 * time.Second
	MinCaptions      = 50 // held-in captions the issue asks for at least
	MinSubgroups     = 20 // subgroups the issue asks for at least (chance about 5%)
	FullCaptions     = 60 // held-in captions of the full evaluation: 3 for each of the 20 subgroups
	MinRedPrompts    = 20
	MinConcepts      = 5
)

// Options configure an evaluation; the zero value is the full one.
type Options struct {
	// WorkDir keeps the classifier, C's cache and the concepts' views
	// between runs ("": a temporary folder, removed at the end).
	WorkDir string
	// Quick runs a smaller evaluation (fewer prompts, two concepts,
	// a shorter classifier training); its counts are below the targets'
	// minimums, which the report says.
	Quick bool
	// Generation settings (zero: the app's defaults).
	Sampler string
	Steps   int
	CFG     float32
	Seed    uint64 // 0: 1

	Captions   int      // text-conditioning prompts (0: 60, quick 20)
	Subgroups  int      // the largest subgroups the prompts come from and the images are classified into (0: 20)
	RedPrompts int      // background prompts (0: 20, quick 10)
	Concepts   []string // held-out emoji names (emoji.HeldOut) to personalize (nil: 5, quick 2)
	// Views are the training views per concept, 3 to 5 (0: 5, every
	// background of ConceptViews, so the concept is seen on the most
	// backgrounds and learns the least of any one).
	Views int
	// CentredViews leaves the views' geometry as the data set draws its
	// emoji (centred, full size), varying only their backgrounds and
	// mirroring: ConceptViews with jitter 0 instead of 1. An experiment
	// (assets/README.md, "Views"), not the figure's protocol.
	CentredViews bool
	// Samples are the generations per personalization prompt (0: 8,
	// quick 2): on the tuning set one concept's 8-image mean distance
	// moved by 1 to 4 between nearly equal gates, as much as many a
	// concept-word gap, and a 4-image mean spreads about 1.4 times more.
	Samples int
	// ConceptSteps overrides the Quick preset's optimizer steps (0: the
	// preset's), for tests.
	ConceptSteps int

	// Skip parts of the evaluation.
	SkipText, SkipBackground, SkipPersonal bool

	Classifier ClassifierOptions // zero: the defaults (quick: 600 steps)
	Data       emoji.Paths       // zero: emoji.DefaultPaths()
	Set        *emoji.Set        // the rendered data set, when the caller has it

	// ImageDir, when set, receives every generated image as
	// <stage>-<n>.png, to look at.
	ImageDir string

	// Progress, when set, is called as the evaluation advances.
	Progress func(Progress)
}

// EvalConcepts returns the held-out emoji the personalization figure
// trains by default: the evaluation set.
func EvalConcepts() []string {
	return []string{"cat face", "grinning face", "evergreen tree", "automobile", "rose"}
}

// HeldOutNames returns the names of every held-out emoji (emoji.HeldOut),
// the names Options.Concepts may give.
func HeldOutNames() []string {
	var out []string
	for _, c := range emoji.HeldOut() {
		out = append(out, c.Name)
	}
	return out
}

// TuningConcepts returns the held-out emoji outside the evaluation set
// (HeldOutNames less EvalConcepts): the set to tune the method's defaults
// on, so that the evaluation set stays unseen.
func TuningConcepts() []string {
	var out []string
	for _, n := range HeldOutNames() {
		if !slices.Contains(EvalConcepts(), n) {
			out = append(out, n)
		}
	}
	return out
}

// Progress reports an evaluation's advance: Done of Total in Stage.
type Progress struct {
	Stage       string
	Done, Total int
	Detail      string
	Elapsed     time.Duration
}

// Stages, as Progress.Stage names them.
const (
	StageData       = "data"
	StageClassifier = "classifier"
	StageText       = "text"
	StageBackground = "background"
	StageConcept    = "concept"
)

func (o Options) withDefaults() Options {
	if o.Sampler == "" {
		o.Sampler = DefaultSampler
	}
	if o.Steps <= 0 {
		o.Steps = DefaultSteps
	}
	if o.CFG == 0 {
		o.CFG = DefaultCFG
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	pick := func(v, full, quick int) int {
		switch {
		case v > 0:
			return v
		case o.Quick:
			return quick
		}
		return full
	}
	o.Captions = pick(o.Captions, FullCaptions, 20)
	o.Subgroups = pick(o.Subgroups, MinSubgroups, MinSubgroups)
	o.RedPrompts = pick(o.RedPrompts, MinRedPrompts, 10)
	o.Samples = pick(o.Samples, 8, 2)
	o.Views = pick(o.Views, 5, 5)
	if o.Concepts == nil {
		o.Concepts = EvalConcepts()
		if o.Quick {
			o.Concepts = o.Concepts[:2]
		}
	}
	if o.Classifier.Steps <= 0 && o.Quick {
		o.Classifier.Steps = 600
	}
	if o.Classifier.Seed == 0 {
		o.Classifier.Seed = o.Seed
	}
	if o.Data == (emoji.Paths{}) {
		o.Data = emoji.DefaultPaths()
	}
	return o
}

// Report is an evaluation's figures. Parts that were skipped are nil.
type Report struct {
	Model               string // the model folder
	NativeSize          int
	Sampler             string
	Steps               int
	CFG                 float32
	Seed                uint64
	Quick               bool
	Classifier          ClassifierCheck
	ClassifierCached    bool
	ClassifierTrainTime time.Duration // 0 when cached
	Subgroups           int           // the classifier's classes
	Text                *TextResult
	Background          *BackgroundResult
	Personal            *PersonalResult
	Elapsed             time.Duration
}

// evaluator holds what the parts share.
type evaluator struct {
	p     *pipeline.Pipeline
	e     *ops.Engine
	set   *emoji.Set
	clf   *Classifier
	o     Options
	start time.Time
	work  string
	saved map[string]int // images written to ImageDir per stage
}

func (ev *evaluator) progress(stage string, done, total int, detail string) {
	if ev.o.Progress != nil {
		ev.o.Progress(Progress{Stage: stage, Done: done, Total: total, Detail: detail, Elapsed: time.Since(ev.start)})
	}
}

// Run evaluates the loaded model p. It stops with ctx's error.
func Run(ctx context.Context, p *pipeline.Pipeline, o Options) (*Report, error) {
	if p == nil {
		return nil, fmt.Errorf("evaldefault: no model")
	}
	o = o.withDefaults()
	if o.Views < 3 || o.Views > 5 {
		return nil, fmt.Errorf("evaldefault: %d views per concept: want 3 to 5", o.Views)
	}
	// The classifier runs on the model's backend (its worker threads), with
	// scratch buffers of its own.
	ev := &evaluator{p: p, e: ops.NewEngine(p.Engine.B), o: o, start: time.Now(), work: o.WorkDir}
	if ev.work == "" {
		dir, err := os.MkdirTemp("", "perfusion-eval-")
		if err != nil {
			return nil, fmt.Errorf("evaldefault: %w", err)
		}
		defer os.RemoveAll(dir)
		ev.work = dir
	} else if err := os.MkdirAll(ev.work, 0o755); err != nil {
		return nil, fmt.Errorf("evaldefault: work folder: %w", err)
	}
	ev.set = o.Set
	if ev.set == nil {
		if miss := o.Data.Missing(); len(miss) > 0 {
			return nil, fmt.Errorf("evaldefault: data files missing: %v (install fonts-noto-color-emoji unicode-data unicode-cldr-core)", miss)
		}
		ev.progress(StageData, 0, 1, "rendering the emoji")
		set, err := emoji.Build(ctx, o.Data, 64, nil)
		if err != nil {
			return nil, err
		}
		ev.set = set
	}
	r := &Report{Model: p.Path, NativeSize: p.NativeSize(), Sampler: o.Sampler, Steps: o.Steps, CFG: o.CFG, Seed: o.Seed, Quick: o.Quick}
	t0 := time.Now()
	clf, cached, err := CachedClassifier(ctx, ev.e, ev.set, o.Classifier, ev.work, func(step, total int, loss float64) {
		if step%10 == 0 || step == total {
			ev.progress(StageClassifier, step, total, fmt.Sprintf("loss %.3f", loss))
		}
	})
	if err != nil {
		return nil, err
	}
	ev.clf, r.ClassifierCached, r.Subgroups = clf, cached, len(clf.Classes)
	if !cached {
		r.ClassifierTrainTime = time.Since(t0)
	}
	if r.Classifier, err = CheckClassifier(ev.e, clf, ev.set); err != nil {
		return nil, err
	}
	if !o.SkipText {
		if r.Text, err = ev.text(ctx); err != nil {
			return nil, err
		}
	}
	if !o.SkipBackground {
		if r.Background, err = ev.background(ctx); err != nil {
			return nil, err
		}
	}
	if !o.SkipPersonal {
		if r.Personal, err = ev.personal(ctx); err != nil {
			return nil, err
		}
	}
	r.Elapsed = time.Since(ev.start)
	return r, nil
}

// genBatch is the most prompts one Generate call gets.
const genBatch = 8

// generate renders the prompts at the native size, genBatch at a time,
// the k-th batch from seed+k, with edit (nil: the base model); label
// names the saved images (Options.ImageDir).
func (ev *evaluator) generate(ctx context.Context, prompts []string, seed uint64, edit pipeline.ConditioningEdit, stage, label string) ([]*image.RGBA, error) {
	n := ev.p.NativeSize()
	var out []*image.RGBA
	for k := 0; k*genBatch < len(prompts); k++ {
		part := prompts[k*genBatch : min(len(prompts), (k+1)*genBatch)]
		req := pipeline.Request{Prompts: part, Seed: seed + uint64(k), Steps: ev.o.Steps, CFG: ev.o.CFG,
			Sampler: ev.o.Sampler, Width: n, Height: n}
		if edit != nil {
			req.Edit = edit
		}
		res, err := ev.p.Generate(ctx, req, nil)
		if err != nil {
			return nil, fmt.Errorf("evaldefault: generate %q: %w", part[0], err)
		}
		for _, img := range res.Images {
			if err := ev.save(label, img); err != nil {
				return nil, err
			}
		}
		out = append(out, res.Images...)
		ev.progress(stage, len(out), len(prompts), part[len(part)-1])
	}
	return out, nil
}

// save writes img to Options.ImageDir, when set.
func (ev *evaluator) save(stage string, img image.Image) error {
	if ev.o.ImageDir == "" {
		return nil
	}
	if ev.saved == nil {
		if err := os.MkdirAll(ev.o.ImageDir, 0o755); err != nil {
			return fmt.Errorf("evaldefault: image folder: %w", err)
		}
		ev.saved = map[string]int{}
	}
	n := ev.saved[stage]
	ev.saved[stage]++
	return writePNG(filepath.Join(ev.o.ImageDir, fmt.Sprintf("%s-%03d.png", stage, n)), img)
}
