// Package preview schedules the studio's live preview. Every change of the
// composition is a Request; after a short quiet period (the debounce) the
// newest request is rendered on the job runner at preview priority. A
// request cancels the preview in flight at once, so the old render stops
// at its next sampling step (the pipeline checks its context between
// steps), and frames of a superseded request are never delivered: only the
// newest request is ever shown.
package preview

import (
	"context"
	"errors"
	"image"
	"reflect"
	"sync"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/jobs"
)

// DefaultDelay is the debounce: how long the composition must stay
// unchanged before a preview starts.
const DefaultDelay = 150 * time.Millisecond

// Step is one sampling step of a render in progress.
type Step struct {
	Step, Total int
	ETA         time.Duration
	Image       *image.RGBA // fast approximation; may be nil
}

// RenderFunc renders c, calling onStep after every sampling step, and
// returns the final (decoded) image. It returns ctx.Err() once ctx is
// cancelled, at the latest after the current step.
type RenderFunc func(ctx context.Context, c export.Composition, onStep func(Step)) (*image.RGBA, error)

// Frame is what the preview shows: a step's approximation, the final
// image, or the error that stopped the render.
type Frame struct {
	Composition export.Composition // the request this frame belongs to
	Step, Total int
	ETA         time.Duration
	Image       *image.RGBA // nil in an error frame, may be nil in a step frame
	Final       bool        // the VAE-decoded result
	Err         error       // the render failed (never a cancellation)
}

// Scheduler debounces requests and renders the newest. Its methods are
// safe for concurrent use.
type Scheduler struct {
	runner *jobs.Runner
	render RenderFunc
	clock  Clock
	delay  time.Duration

	mu       sync.Mutex
	gen      uint64 // number of the newest request
	pending  *export.Composition
	timer    Timer
	inflight *flight
	shown    *export.Composition // composition of the last final frame
	hooks    []func(Frame)
	stopped  bool
}

// flight is the preview job of one request.
type flight struct {
	gen uint64
	c   export.Composition
	job *jobs.Job
}

// New returns a Scheduler that renders with render on runner. A nil clock
// is the system clock; delay <= 0 is DefaultDelay.
func New(runner *jobs.Runner, render RenderFunc, clock Clock, delay time.Duration) *Scheduler {
	if clock == nil {
		clock = SystemClock{}
	}
	if delay <= 0 {
		delay = DefaultDelay
	}
	return &Scheduler{runner: runner, render: render, clock: clock, delay: delay}
}

// OnFrame registers fn to receive every frame of the newest request. fn
// runs on the runner's worker goroutine and must return quickly (hand the
// frame to the UI thread and return).
func (s *Scheduler) OnFrame(fn func(Frame)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// Request asks for a preview of c. The preview in flight is cancelled
// unless it renders exactly c; a preview starts once no other request has
// come for the debounce delay. A request equal to what is already shown
// or being rendered changes nothing.
func (s *Scheduler) Request(c export.Composition) { s.request(c, false) }

// Refresh renders c again even if it is what is shown or being rendered
// (after the model changed, say), with the usual debounce.
func (s *Scheduler) Refresh(c export.Composition) { s.request(c, true) }

func (s *Scheduler) request(c export.Composition, force bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if f := s.inflight; f != nil && !force && reflect.DeepEqual(f.c, c) {
		s.pending = nil // back to what is being rendered: let it finish
		return
	}
	s.gen++
	s.cancelFlight()
	if s.shown != nil && !force && reflect.DeepEqual(*s.shown, c) {
		s.pending = nil
		return
	}
	s.pending = &c
	gen := s.gen
	s.timer = s.clock.AfterFunc(s.delay, func() { s.start(gen) })
}

// Cancel cancels the pending and in-flight previews.
func (s *Scheduler) Cancel() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.pending = nil
	s.cancelFlight()
}

// Stop cancels everything and ignores later requests.
func (s *Scheduler) Stop() {
	s.Cancel()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// Busy reports whether a preview is waiting or rendering.
func (s *Scheduler) Busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending != nil || s.inflight != nil
}

// cancelFlight cancels the job in flight; s.mu is held.
func (s *Scheduler) cancelFlight() {
	if s.inflight != nil {
		s.inflight.job.Cancel()
		s.inflight = nil
	}
}

// start submits the preview job of request gen, if it is still the newest.
func (s *Scheduler) start(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || s.pending == nil || s.stopped {
		return
	}
	c := *s.pending
	s.pending = nil
	s.timer = nil
	f := &flight{gen: gen, c: c}
	f.job = s.runner.Submit(jobs.Preview, "preview", func(ctx context.Context) error { return s.run(ctx, f) })
	s.inflight = f
}

// run renders one flight on the worker goroutine.
func (s *Scheduler) run(ctx context.Context, f *flight) error {
	img, err := s.render(ctx, f.c, func(st Step) {
		s.emit(f, Frame{Composition: f.c, Step: st.Step, Total: st.Total, ETA: st.ETA, Image: st.Image})
	})
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return ctx.Err()
	case err != nil:
		s.emit(f, Frame{Composition: f.c, Err: err})
	default:
		s.emit(f, Frame{Composition: f.c, Image: img, Final: true})
	}
	s.mu.Lock()
	if s.inflight == f {
		s.inflight = nil
		if err == nil {
			c := f.c
			s.shown = &c
		}
	}
	s.mu.Unlock()
	return err
}

// emit delivers fr if f is still the newest request. The hooks run under
// the lock, so a Request that returns has also stopped every frame of the
// requests it replaced.
func (s *Scheduler) emit(f *flight, fr Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.gen != s.gen || s.stopped {
		return
	}
	if fr.Final {
		fr.Total = f.c.Steps
		fr.Step = fr.Total
	}
	for _, fn := range s.hooks {
		fn(fr)
	}
}
