package app

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/history"
	"github.com/perfusion-studio/perfusion/app/jobs"
	"github.com/perfusion-studio/perfusion/app/preview"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// request turns a composition into a pipeline request.
func request(c export.Composition, previews bool) (pipeline.Request, error) {
	name := c.Sampler
	if name == "" {
		name = DefaultSampler
	}
	name, err := pipeline.ParseSampler(name)
	if err != nil {
		return pipeline.Request{}, err
	}
	return pipeline.Request{
		Prompt: c.Prompt, Negative: c.Negative, Seed: c.Seed, Steps: c.Steps, CFG: float32(c.CFG),
		Sampler: name, Width: c.Width, Height: c.Height, ClipSkip: c.ClipSkip,
		Emphasis: true, LongPrompts: true, Previews: previews,
	}, nil
}

// generate renders c with model p (nil: no model loaded), reporting each
// step.
func (s *Studio) generate(ctx context.Context, p *Model, c export.Composition, previews bool, onStep func(preview.Step)) (*image.RGBA, error) {
	if p == nil {
		return nil, ErrNoModel
	}
	req, err := request(c, previews)
	if err != nil {
		return nil, err
	}
	// The concepts' edit, per generation (the loaded model is shared).
	ed, err := s.Concepts.edit(ctx, p, c)
	if err != nil {
		return nil, err
	}
	if ed != nil {
		req.Edit = ed
	}
	req.Encodings = s.encodings
	s.applyMemoryLimit(p.MemoryBudget(c.Width, c.Height, 1), 0, 0)
	res, err := p.Generate(ctx, req, func(pr pipeline.Progress) {
		if onStep != nil {
			onStep(preview.Step{Step: pr.Step, Total: pr.Total, ETA: pr.ETA, Image: pr.Preview})
		}
	})
	if err != nil {
		return nil, err
	}
	return res.Images[0], nil
}

// applyMemoryLimit sets the process's memory budget through the
// SetMemoryLimit hook: the newest generation's budget (gen, when not 0:
// pipeline.MemoryBudget), or at least the weights on the heap, plus the
// memory running trainings need beyond the weights (trainDelta is added
// to it: positive when a training starts, negative when it ends).
func (s *Studio) applyMemoryLimit(gen, trainDelta, heapWeights int64) {
	s.mu.Lock()
	if gen != 0 {
		s.genBudget = gen
	}
	s.trainMemory += trainDelta
	limit := max(s.genBudget, heapWeights) + s.trainMemory
	s.mu.Unlock()
	if s.SetMemoryLimit != nil && limit > 0 {
		s.SetMemoryLimit(limit)
	}
}

// EncodingStats counts the text encodings reused (Hits) and computed
// (Misses) by previews and renders.
func (s *Studio) EncodingStats() pipeline.CacheStats { return s.encodings.Stats() }

// withModel returns the current model and c naming it (name and hash) and
// its concept files (hashes), so that the settings kept with an image name
// what made it.
func (s *Studio) withModel(c export.Composition) (*Model, export.Composition) {
	p, info := s.Models.Current()
	c.Model, c.ModelHash = info.Name, info.Hash
	if len(c.Concepts) > 0 {
		c = s.Concepts.Stamp(c)
	}
	return p, c
}

// RenderResult is a finished (or failed) final render.
type RenderResult struct {
	Composition export.Composition
	Image       *image.RGBA
	// Entry is where history keeps it (zero when history is off or the
	// save failed; SaveErr says why).
	Entry   history.Entry
	SaveErr error
	Err     error // the render failed; context.Canceled when cancelled
}

// OnRender registers fn to receive every final render's result, on the
// job worker goroutine.
func (s *Studio) OnRender(fn func(RenderResult)) {
	s.onRender.add(fn)
}

// Render queues a final render of c at render priority (after previews).
// Progress arrives as TaskRender tasks, the result through OnRender; the
// image is kept in history. CancelTask or the job's Cancel stops it.
func (s *Studio) Render(c export.Composition) *jobs.Job {
	var remove func()
	job := s.Jobs.Submit(jobs.Render, "render", func(ctx context.Context) error {
		s.emitTask(Task{Kind: TaskRender, Label: "Rendering…"})
		p, c := s.withModel(c)
		img, err := s.generate(ctx, p, c, false, func(st preview.Step) {
			s.emitTask(Task{Kind: TaskRender, Label: fmt.Sprintf("Rendering: step %d of %d", st.Step, st.Total),
				Fraction: float64(st.Step) / float64(max(st.Total, 1)) * 0.95, ETA: st.ETA})
		})
		r := RenderResult{Composition: c, Image: img, Err: err}
		if err == nil {
			s.rendered(c.Seed)
		}
		if err == nil && s.History != nil {
			r.Entry, r.SaveErr = s.History.Add(img, c)
		}
		t := Task{Kind: TaskRender, Done: true, Fraction: 1, Err: err, Label: "Render finished"}
		switch {
		case errors.Is(err, context.Canceled):
			t.Label = "Render cancelled"
			s.SetStatus(t.Label)
		case err != nil:
			t.Label = "Render failed"
			s.SetStatus("Render failed: " + err.Error())
		case r.SaveErr != nil:
			s.SetStatus("Rendered, but not kept in history: " + r.SaveErr.Error())
		default:
			s.SetStatus(fmt.Sprintf("Rendered %dx%d, seed %d", c.Width, c.Height, c.Seed))
		}
		s.emitTask(t)
		s.onRender.emit(r)
		return err
	})
	remove = s.addCancel(TaskRender, job.Cancel)
	go func() {
		<-job.Done()
		remove()
	}()
	return job
}

// BatchFileName is the file ExportBatch writes for seed.
func BatchFileName(c export.Composition, seed uint64) string {
	base := c.Model
	if base == "" {
		base = "image"
	}
	return fmt.Sprintf("%s-%d.png", base, seed)
}

// ExportBatch renders c with n consecutive seeds from c.Seed and writes
// each to dir (see BatchFileName) with its settings. It runs at render
// priority; progress arrives as TaskExport tasks and CancelTask stops it
// (the images written so far stay).
func (s *Studio) ExportBatch(c export.Composition, n int, dir string) *jobs.Job {
	var remove func()
	job := s.Jobs.Submit(jobs.Render, "batch export", func(ctx context.Context) error {
		p, c := s.withModel(c)
		err := s.exportBatch(ctx, p, c, n, dir)
		t := Task{Kind: TaskExport, Done: true, Fraction: 1, Err: err, Label: fmt.Sprintf("Exported %d images to %s", n, dir)}
		switch {
		case errors.Is(err, context.Canceled):
			t.Label = "Export cancelled"
		case err != nil:
			t.Label = "Export failed"
			s.SetStatus("Export failed: " + err.Error())
		default:
			s.SetStatus(t.Label)
		}
		s.emitTask(t)
		return err
	})
	remove = s.addCancel(TaskExport, job.Cancel)
	go func() {
		<-job.Done()
		remove()
	}()
	return job
}

func (s *Studio) exportBatch(ctx context.Context, p *Model, c export.Composition, n int, dir string) error {
	if n < 1 || n > 1000 {
		return fmt.Errorf("export: %d images: want 1 to 1000", n)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("export: folder %s does not exist", dir)
	}
	for i := range n {
		ci := c
		ci.Seed = c.Seed + uint64(i)
		img, err := s.generate(ctx, p, ci, false, func(st preview.Step) {
			f := (float64(i) + float64(st.Step)/float64(max(st.Total, 1))) / float64(n)
			s.emitTask(Task{Kind: TaskExport, Label: fmt.Sprintf("Exporting image %d of %d", i+1, n), Fraction: f})
		})
		if err != nil {
			return err
		}
		if err := export.SaveComposition(filepath.Join(dir, BatchFileName(ci, ci.Seed)), img, ci, samplerLabel); err != nil {
			return err
		}
	}
	return nil
}
