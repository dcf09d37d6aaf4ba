package app

import (
	"context"
	"fmt"
	"image"
	"math"
	"strings"
	"time"

	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// DefaultSampleBudget is the share of a training run's time its samples
// may take: the run draws a sample every N steps, N chosen from the
// measured costs of a step and a sample so that samples stay within it.
const DefaultSampleBudget = 0.10

// Samples drawn while a concept trains.
const (
	trainSampleSteps   = 6  // DDIM steps of a sample (fewer when the preview's are)
	trainSampleSeed    = 42 // the same noise every time, so samples compare
	trainSampleCFG     = 7.5
	trainSampleSampler = "ddim"
)

// TrainingSample is a render of the concept as it stood after a training
// step: the concept prompt at a fixed seed, a few steps, at the model's
// native size capped to the preview's.
type TrainingSample struct {
	Step  int
	Image *image.RGBA
	Cost  time.Duration // its compute time, without the previews run meanwhile
}

// samplePlan decides when a run draws a sample: as often as the budget
// allows, so that samples take at most that share of the run's time. It
// learns a step's cost and a sample's as they are measured; before the
// first sample it guesses the sample's cost from the step's.
type samplePlan struct {
	budget float64       // samples' share of the time; ≤ 0: no samples
	guess  float64       // a sample's cost in training steps, until one is measured
	step   time.Duration // a training step's cost (moving average); 0: unknown
	sample time.Duration // the last sample's cost; 0: none yet
	last   int           // the step of the last sample, or where the run started
}

// newSamplePlan plans samples of side px and steps sampling steps for a
// run of settings s starting after step resumed. The guess counts UNet
// forwards: a training sample costs about five at the training size
// (README), a sample 2 per step (guidance) plus about 3 for the VAE decode.
func newSamplePlan(budget float64, s train.Settings, side, steps, resumed int) *samplePlan {
	area := float64(side*side) / float64(max(s.Size*s.Size, 1))
	guess := float64(2*steps+3) * area / float64(5*max(s.Batch, 1))
	return &samplePlan{budget: budget, guess: guess, last: resumed}
}

// observeStep records one training step's cost.
func (sp *samplePlan) observeStep(d time.Duration) {
	if d <= 0 {
		return
	}
	if sp.step == 0 {
		sp.step = d
		return
	}
	sp.step = (3*sp.step + d) / 4
}

// observeSample records a sample drawn at step and its cost.
func (sp *samplePlan) observeSample(step int, d time.Duration) {
	sp.last, sp.sample = step, d
}

// every is N, the steps between two samples; 0 while no step has been
// measured or samples are off.
func (sp *samplePlan) every() int {
	if sp.budget <= 0 || sp.step <= 0 {
		return 0
	}
	cost := float64(sp.sample)
	if sp.sample <= 0 {
		cost = sp.guess * float64(sp.step)
	}
	return max(1, int(math.Ceil(cost/(sp.budget*float64(sp.step))-1e-9)))
}

// due reports whether a sample is due after step of total (the last step
// has none: the self-check renders the finished concept).
func (sp *samplePlan) due(step, total int) bool {
	n := sp.every()
	return n > 0 && step < total && step-sp.last >= n
}

// sampleSide is the side of a training sample: the model's native size,
// capped to the preview's side, a multiple of the model's size multiple.
func sampleSide(native, previewSide, multiple int) int {
	side := native
	if previewSide > 0 && previewSide < side {
		side = previewSide
	}
	if multiple > 0 {
		side = max(multiple, side/multiple*multiple)
	}
	return side
}

// samplePrompt is the concept prompt of a sample: the run's first
// training template around the concept's placeholder.
func samplePrompt(name string, s train.Settings) string {
	return strings.Replace(s.TrainingTemplates()[0], "{}", concepts.Placeholder(name), 1)
}

// sampleConcept is the edit's view of a snapshot at the inference gate.
func sampleConcept(c *train.Trained) (*edit.Concept, error) {
	emb, err := tensor.New(c.Embedding, len(c.Embedding))
	if err != nil {
		return nil, err
	}
	ec := &edit.Concept{
		Name: c.Name, Word: concepts.Placeholder(c.Name), Embedding: emb, Input: c.TargetInput,
		Superclass: c.Superclass, Beta: edit.InferenceBeta, Tau: edit.InferenceTau,
		Layers: make(map[string]edit.Targets, len(c.Layers)),
	}
	for _, l := range c.Layers {
		k, err := tensor.New(l.OutK, len(l.OutK))
		if err != nil {
			return nil, err
		}
		v, err := tensor.New(l.OutV, len(l.OutV))
		if err != nil {
			return nil, err
		}
		ec.Layers[l.Name] = edit.Targets{K: k, V: v}
	}
	return ec, nil
}

// drawSample renders snapshot c. Between its sampling steps it yields
// the job runner's worker (pause), so previews queued meanwhile go first;
// the cost it returns leaves their time out. ctx cancels it.
func drawSample(ctx context.Context, p *pipeline.Pipeline, metric edit.Metric, c *train.Trained, side, steps int, pause func()) (*image.RGBA, time.Duration, error) {
	ec, err := sampleConcept(c)
	if err != nil {
		return nil, 0, fmt.Errorf("sample: %w", err)
	}
	set, err := concepts.NewSet([]concepts.Use{{Concept: ec, Beta: edit.InferenceBeta, Tau: edit.InferenceTau}}, metric, edit.Options{})
	if err != nil {
		return nil, 0, fmt.Errorf("sample: %w", err)
	}
	req := pipeline.Request{
		Prompt: samplePrompt(c.Name, c.Settings), Seed: trainSampleSeed, Steps: steps, CFG: trainSampleCFG,
		Sampler: trainSampleSampler, Width: side, Height: side, Edit: set,
	}
	var cost time.Duration
	seg := time.Now()
	res, err := p.Generate(ctx, req, func(pr pipeline.Progress) {
		if pr.Step >= pr.Total {
			return // the decode follows at once
		}
		cost += time.Since(seg)
		pause()
		seg = time.Now()
	})
	cost += time.Since(seg)
	if err != nil {
		return nil, cost, err
	}
	return res.Images[0], cost, nil
}
