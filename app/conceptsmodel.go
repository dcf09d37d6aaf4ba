package app

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// modelState is what concepts need of one loaded model.
type modelState struct {
	p      *pipeline.Pipeline
	name   string
	hashed chan struct{} // closed when base (or hErr) is known
	base   string
	hErr   error
	need   chan struct{} // closed when a generation needs C
	needed sync.Once
	ready  chan struct{} // closed when cv (or err) is known
	cv     *covariance.Covariance
	err    error
	cancel context.CancelFunc
}

// setModel starts preparing concepts for a newly loaded model: its base
// hash at once, then C (from the cache, or computed: minutes for SD1.5),
// with progress as TaskConcepts tasks. It cancels the previous model's.
func (c *Concepts) setModel(p *pipeline.Pipeline, info ModelInfo) {
	ctx, cancel := context.WithCancel(context.Background())
	m := &modelState{p: p, name: info.Name, hashed: make(chan struct{}), need: make(chan struct{}),
		ready: make(chan struct{}), cancel: cancel}
	c.mu.Lock()
	old := c.model
	c.model = m
	c.mu.Unlock()
	if old != nil {
		old.cancel()
	}
	go func() {
		defer cancel()
		m.base, m.hErr = concepts.BaseHash(ctx, p.Path)
		close(m.hashed)
		c.changed()
		if !c.usable(m.base) { // no concept for this model yet: C when needed
			select {
			case <-m.need:
			case <-ctx.Done():
				m.err = ctx.Err()
				close(m.ready)
				return
			}
		}
		m.cv, m.err = c.covariance(ctx, m)
		close(m.ready)
	}()
}

// usable reports whether the library holds a concept for base model base.
func (c *Concepts) usable(base string) bool {
	if c.lib == nil || base == "" {
		return false
	}
	ents, _ := c.lib.List()
	for _, e := range ents {
		if e.Header != nil && e.Header.CheckBase(base) == nil {
			return true
		}
	}
	return false
}

// covariance gets C for m, reporting progress on the status bar.
func (c *Concepts) covariance(ctx context.Context, m *modelState) (*covariance.Covariance, error) {
	s := c.studio
	remove := s.addCancel(TaskConcepts, m.cancel)
	defer remove()
	label := "Preparing concepts for " + m.name
	cv, st, err := concepts.Covariance(ctx, m.p, c.captions, c.cacheDir, func(pr covariance.Progress) {
		s.emitTask(Task{Kind: TaskConcepts, Label: fmt.Sprintf("%s: %d of %d captions", label, pr.Done, pr.Total),
			Fraction: float64(pr.Done) / float64(max(pr.Total, 1)), ETA: pr.ETA})
	})
	t := Task{Kind: TaskConcepts, Done: true, Fraction: 1, Err: err, Label: "Concepts ready for " + m.name}
	switch {
	case errors.Is(err, context.Canceled):
		t.Label = "Preparing concepts stopped"
	case err != nil:
		t.Label = "Preparing concepts failed"
		s.SetStatus("Concepts cannot be used with " + m.name + ": " + err.Error())
	case !st.Hit:
		s.SetStatus(t.Label)
	}
	s.emitTask(t)
	return cv, err
}

// state returns the prepared state of model p, waiting for C (ctx stops
// the wait). A cancelled or failed preparation is started again.
func (c *Concepts) state(ctx context.Context, p *pipeline.Pipeline) (*modelState, error) {
	c.mu.Lock()
	m := c.model
	c.mu.Unlock()
	if m == nil || m.p != p {
		if cur, info := c.studio.Models.Current(); cur != p || p == nil {
			return nil, errors.New("concepts: the model changed; try again")
		} else {
			c.setModel(p, info)
		}
		return c.state(ctx, p)
	}
	m.needed.Do(func() { close(m.need) })
	select {
	case <-m.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if m.hErr != nil {
		return nil, fmt.Errorf("concepts: %w", m.hErr)
	}
	if m.err != nil {
		if errors.Is(m.err, context.Canceled) && ctx.Err() == nil {
			c.mu.Lock()
			same := c.model == m
			c.mu.Unlock()
			if same { // cancelled from the status bar: start again for this use
				c.setModel(m.p, ModelInfo{Name: m.name, Path: m.p.Path})
				return c.state(ctx, p)
			}
		}
		return nil, m.err
	}
	return m, nil
}
