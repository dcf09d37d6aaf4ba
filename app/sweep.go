package app

import (
	"context"
	"errors"
	"fmt"
	"image"
	"slices"
	"strings"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/jobs"
	"github.com/perfusion-studio/perfusion/app/preview"
)

// SweepResult is a strip of renders of one composition that differ only in
// one concept's β, for picking the likeness ↔ prompt balance by eye.
type SweepResult struct {
	Concept string
	Betas   []float64
	Images  []*image.RGBA // one per β (the preview's size and steps)
	Err     error         // context.Canceled when cancelled
}

// SweepBetas returns n values of β evenly spread from MinBeta+0.1 to
// MaxBeta-0.05 (the range where the gate changes the image most).
func SweepBetas(n int) []float64 {
	lo, hi := MinBeta+0.1, MaxBeta-0.05
	if n < 2 {
		return []float64{(lo + hi) / 2}
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + (hi-lo)*float64(i)/float64(n-1)
	}
	return out
}

// OnSweep registers fn to receive every sweep's result, on the job worker.
func (s *Studio) OnSweep(fn func(SweepResult)) {
	s.onSweep.add(fn)
}

// Sweep renders c once per β in betas for the concept name (fixed seed, the
// preview's settings), at render priority; progress arrives as TaskRender
// tasks, the strip through OnSweep; CancelTask stops it.
func (s *Studio) Sweep(c export.Composition, name string, betas []float64) *jobs.Job {
	var remove func()
	job := s.Jobs.Submit(jobs.Render, "sweep", func(ctx context.Context) error {
		r := SweepResult{Concept: name, Betas: slices.Clone(betas)}
		r.Images, r.Err = s.sweep(ctx, c, name, betas)
		t := Task{Kind: TaskRender, Done: true, Fraction: 1, Err: r.Err, Label: "Sweep finished"}
		switch {
		case errors.Is(r.Err, context.Canceled):
			t.Label = "Sweep cancelled"
		case r.Err != nil:
			t.Label = "Sweep failed"
			s.SetStatus("Sweep failed: " + r.Err.Error())
		}
		s.emitTask(t)
		s.onSweep.emit(r)
		return r.Err
	})
	remove = s.addCancel(TaskRender, job.Cancel)
	go func() {
		<-job.Done()
		remove()
	}()
	return job
}

func (s *Studio) sweep(ctx context.Context, c export.Composition, name string, betas []float64) ([]*image.RGBA, error) {
	i := slices.IndexFunc(c.Concepts, func(u export.ConceptUse) bool { return strings.EqualFold(u.Name, name) })
	if i < 0 {
		return nil, fmt.Errorf("sweep: the composition does not use concept %s", name)
	}
	if len(betas) == 0 || len(betas) > 16 {
		return nil, fmt.Errorf("sweep: %d values of β: want 1 to 16", len(betas))
	}
	p, c := s.withModel(c)
	c = s.previewComposition(c)
	var out []*image.RGBA
	for k, b := range betas {
		ck := c
		ck.Concepts = slices.Clone(c.Concepts)
		ck.Concepts[i].Beta = b
		img, err := s.generate(ctx, p, ck, false, func(st preview.Step) {
			f := (float64(k) + float64(st.Step)/float64(max(st.Total, 1))) / float64(len(betas))
			s.emitTask(Task{Kind: TaskRender, Label: fmt.Sprintf("Sweep of β: image %d of %d", k+1, len(betas)), Fraction: f})
		})
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}
