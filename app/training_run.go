package app

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/perfusion-studio/perfusion/app/jobs"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/library"
	"github.com/perfusion-studio/perfusion/concepts/photos"
	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// slot is the job runner's worker, held by a training run between two
// yields.
type slot struct {
	release chan struct{}
}

// acquire queues a Training-priority job on the runner and waits until it
// runs: from then on the run holds the worker, so no preview or render
// runs beside it, until release. It fails when ctx is done or the runner
// closed.
func acquire(ctx context.Context, r *jobs.Runner) (*slot, error) {
	granted := make(chan struct{})
	s := &slot{release: make(chan struct{})}
	j := r.Submit(jobs.Training, "training", func(jctx context.Context) error {
		close(granted)
		select {
		case <-s.release:
		case <-jctx.Done(): // the runner is closing
		}
		return nil
	})
	select {
	case <-granted:
		return s, nil
	case <-j.Done():
		if err := j.Err(); err != nil {
			return nil, err
		}
		return nil, jobs.ErrClosed
	case <-ctx.Done():
		j.Cancel()
		return nil, ctx.Err()
	}
}

// hold is a run's hold on the worker: yield gives it back and queues
// again, so that whatever was queued meanwhile (previews, renders: all of
// higher priority) runs first.
type hold struct {
	runner *jobs.Runner
	cur    *slot
	cancel context.CancelFunc // of the run: a closing runner stops it
}

func (h *hold) yield(ctx context.Context) {
	h.drop()
	s, err := acquire(ctx, h.runner)
	if err != nil {
		h.cancel() // the runner closed: the studio is going away
		return
	}
	h.cur = s
}

func (h *hold) drop() {
	if h.cur != nil {
		close(h.cur.release)
		h.cur = nil
	}
}

// run is one training run, on its own goroutine.
func (t *Training) run(ctx context.Context, p *pipeline.Pipeline, info ModelInfo, r TrainRequest, s train.Settings) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var losses []float64
	ev := func(e TrainingEvent) {
		e.Name, e.Elapsed = r.Name, time.Since(start)
		if e.Losses == nil {
			e.Losses = slices.Clone(losses)
		}
		t.emit(e)
		t.studio.emitTask(Task{Kind: TaskTraining, Label: "<" + r.Name + ">: " + e.Label, Fraction: e.Fraction(), ETA: e.ETA, Done: e.Done, Err: e.Err})
	}
	fail := func(err error) {
		if errors.Is(err, jobs.ErrClosed) || ctx.Err() != nil {
			err = context.Canceled
		}
		switch {
		case errors.Is(err, context.Canceled):
			t.studio.SetStatus(fmt.Sprintf("Training <%s> stopped; start it again to continue", r.Name))
		case IsNotLearned(err):
			t.studio.SetStatus(fmt.Sprintf("Training <%s> failed its self-check", r.Name))
		default:
			t.studio.SetStatus(fmt.Sprintf("Training <%s> failed: %v", r.Name, err))
		}
		ev(TrainingEvent{Stage: StageSave, Label: "Training " + r.Name + " stopped", Done: true, Err: err})
	}
	// The run's memory on top of whatever the previews and renders need
	// (the weights are shared).
	extra := p.TrainingBudget(s.Size, s.Micro, !s.Recomputes()) - p.HeapWeightBytes()
	t.studio.applyMemoryLimit(0, extra, p.HeapWeightBytes())
	defer t.studio.applyMemoryLimit(0, -extra, p.HeapWeightBytes())
	h := &hold{runner: t.studio.Jobs, cancel: cancel}
	first, err := acquire(ctx, h.runner)
	if err != nil {
		fail(err)
		return
	}
	h.cur = first
	defer h.drop()

	t.studio.SetStatus(fmt.Sprintf("Training <%s>…", r.Name))
	ev(TrainingEvent{Stage: StageCovariance, Label: "Preparing the text encoder's statistics…"})
	cv, st, err := covariance.ForPipeline(ctx, p, t.captions(), filepath.Join(t.dataDir, covarianceDir), covariance.Options{
		Progress: func(c covariance.Progress) {
			ev(TrainingEvent{Stage: StageCovariance, Label: "Text encoder statistics (once per model)", Step: c.Done, Total: c.Total, ETA: c.ETA})
			h.yield(ctx)
		},
	})
	if err != nil {
		fail(err)
		return
	}
	if st.Problem != nil {
		t.studio.SetStatus(fmt.Sprintf("Covariance cache: %v", st.Problem))
	}
	// The hash concepts are checked against (Concepts.setModel's): a
	// diffusers folder, such as the default model, has no file hash.
	hash := info.Hash
	if hash == "" {
		if hash, err = concepts.BaseHash(ctx, p.Path); err != nil {
			fail(err)
			return
		}
	}

	ph := make([]photos.Photo, len(r.Photos))
	for i, q := range r.Photos {
		ph[i] = photos.Photo{Path: q.Path, Crop: q.Crop}
	}
	ps := t.studio.PreviewSettings()
	side, steps := sampleSide(p.NativeSize(), ps.MaxSide, info.SizeMultiple), trainSampleSteps
	if ps.Steps > 0 {
		steps = min(steps, ps.Steps)
	}
	var plan *samplePlan  // made at the first step: a resumed run starts later
	var stepEnd time.Time // when the last training step's report returned
	job := train.Job{
		Pipeline: p, Name: r.Name, Class: strings.TrimSpace(r.Word), Photos: ph, Metric: cv, Settings: s,
		Resume: t.resumePath(r.Name),
		Progress: func(pr train.Progress) {
			e := TrainingEvent{Stage: pr.Stage, Step: pr.Step, Total: pr.Total, ETA: pr.ETA, Resumed: pr.Resumed}
			switch pr.Stage {
			case train.StageTrain:
				if plan == nil {
					plan = newSamplePlan(t.sampleBudget, s, side, steps, pr.Resumed)
				}
				if !stepEnd.IsZero() {
					plan.observeStep(time.Since(stepEnd))
				}
				e.SampleEvery = plan.every()
				losses = append(losses, pr.Loss)
				e.Label = fmt.Sprintf("Training step %d of %d, loss %.4f", pr.Step, pr.Total, pr.Loss)
			case train.StagePhotos:
				e.Label = "Reading the photos"
			case train.StageLatents:
				e.Label = "Encoding the photos"
			case train.StageMask:
				e.Label = "Finding the subject"
			case train.StageCheck:
				e.Label = "Checking the concept"
			}
			ev(e)
			h.yield(ctx)
			stepEnd = time.Time{}
			if pr.Stage != train.StageTrain {
				return
			}
			if pr.Snapshot != nil && plan.due(pr.Step, pr.Total) {
				drawing := e
				drawing.Label += "; drawing a sample"
				ev(drawing)
				t.stepSample(ctx, p, cv, pr, plan, side, steps, h, func(ts *TrainingSample) {
					e.StepSample, e.SampleEvery = ts, plan.every()
					ev(e)
				})
			}
			stepEnd = time.Now()
		},
	}
	res, err := train.Run(ctx, job)
	if err != nil {
		if IsNotLearned(err) {
			err = notLearned(err)
		}
		fail(err)
		return
	}
	ev(TrainingEvent{Stage: StageSave, Label: "Saving the concept", Losses: slices.Clone(res.Losses)})
	name, path, err := t.save(res, r, hash, cv.Key)
	if err != nil {
		fail(err)
		return
	}
	t.Discard(r.Name) // the resume file's work is saved
	t.studio.SetStatus(fmt.Sprintf("Concept <%s> trained in %s", name, res.Elapsed.Round(time.Second)))
	ev(TrainingEvent{Stage: StageSave, Label: "Concept " + name + " saved", Step: 1, Total: 1,
		Losses: slices.Clone(res.Losses), Done: true, Concept: name, Path: path, Sample: checkSample(ctx, p, res.Check)})
}

// stepSample draws a sample of the concept as it stands at pr's step and
// hands it to send; it holds the worker only between yields (see
// drawSample). A sample that fails for another reason than the run's
// cancellation turns samples off for the run, with a status message.
func (t *Training) stepSample(ctx context.Context, p *pipeline.Pipeline, metric edit.Metric, pr train.Progress, plan *samplePlan, side, steps int, h *hold, send func(*TrainingSample)) {
	img, cost, err := drawSample(ctx, p, metric, pr.Snapshot(), side, steps, func() {
		if t.samplePause != nil {
			t.samplePause()
		}
		h.yield(ctx)
	})
	if err != nil {
		if ctx.Err() == nil {
			plan.budget = 0
			t.studio.SetStatus(fmt.Sprintf("No more samples while it trains: %v", err))
		}
		return
	}
	plan.observeSample(pr.Step, cost)
	send(&TrainingSample{Step: pr.Step, Image: img, Cost: cost})
}

// checkSample decodes the self-check's render of the concept (nil when it
// cannot): one VAE decode at the training size.
func checkSample(ctx context.Context, p *pipeline.Pipeline, c train.Check) *image.RGBA {
	if !c.Concept.Valid() || c.Concept.Rank() != 4 {
		return nil
	}
	x, err := p.VAE.DecodeLatents(ctx, c.Concept) // [1, 3, H, W]
	if err != nil {
		return nil
	}
	img, err := vae.ToRGBA(x, 0)
	if err != nil {
		return nil
	}
	return img
}

// notLearned restates a failed self-check for the app (no command-line
// flags) and says the run can continue.
func notLearned(err error) error {
	msg := strings.ReplaceAll(err.Error(), " (--steps)", "")
	msg = strings.TrimPrefix(msg, train.ErrNotLearned.Error()+": ")
	return notLearnedError(fmt.Sprintf("The concept learned nothing usable: %s. It was not saved; start again with more steps to continue this run.", msg))
}

// notLearnedError is a failed self-check, worded for people; it is
// train.ErrNotLearned.
type notLearnedError string

func (e notLearnedError) Error() string        { return string(e) }
func (e notLearnedError) Is(target error) bool { return target == train.ErrNotLearned }

// save writes the trained concept into the library, under a free name if
// its own was taken meanwhile.
func (t *Training) save(res *train.Result, r TrainRequest, hash, covKey string) (name, path string, err error) {
	lib, err := t.Library()
	if err != nil {
		return "", "", err
	}
	thumb, err := photos.DecodeFile(r.Photos[0].Path, 0)
	if err != nil {
		return "", "", err
	}
	if sq, err := photos.Square(thumb, r.Photos[0].Crop, 256); err == nil {
		thumb = sq
	}
	c, err := res.ConceptFile(hash, covKey, len(r.Photos), thumb)
	if err != nil {
		return "", "", err
	}
	err = lib.Save(c)
	if errors.Is(err, library.ErrExists) {
		c.Name = lib.FreeName(c.Name)
		err = lib.Save(c)
	}
	if err != nil {
		return "", "", fmt.Errorf("save the concept: %w", err)
	}
	path, err = lib.Path(c.Name)
	if err != nil {
		return "", "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", "", fmt.Errorf("save the concept: %w", err)
	}
	return c.Name, path, nil
}
