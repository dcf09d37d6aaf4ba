package preview

import (
	"context"
	"errors"
	"image"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/jobs"
)

// fakeClock fires timers only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Duration
	f       func()
	stopped bool
	fired   bool
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// Advance moves the clock and runs the timers that fall due, in order, on
// the calling goroutine.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.fired && t.at <= c.now {
			t.fired = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// fakeRender renders c.Steps steps; with a gate each step waits for a
// token (or cancellation) after reporting.
type fakeRender struct {
	gate chan struct{}
	err  error

	mu       sync.Mutex
	started  []string // prompts, in order
	finished map[string]error
	steps    map[string]int
}

func newFakeRender(gated bool) *fakeRender {
	f := &fakeRender{finished: map[string]error{}, steps: map[string]int{}}
	if gated {
		f.gate = make(chan struct{})
	}
	return f
}

func (f *fakeRender) render(ctx context.Context, c export.Composition, onStep func(Step)) (img *image.RGBA, err error) {
	f.mu.Lock()
	f.started = append(f.started, c.Prompt)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.finished[c.Prompt] = err
		f.mu.Unlock()
	}()
	for i := 1; i <= c.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.steps[c.Prompt]++
		f.mu.Unlock()
		onStep(Step{Step: i, Total: c.Steps, Image: image.NewRGBA(image.Rect(0, 0, 2, 2))})
		if f.gate != nil {
			select {
			case <-f.gate:
			case <-ctx.Done():
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	return image.NewRGBA(image.Rect(0, 0, 8, 8)), nil
}

func (f *fakeRender) snapshot() (started []string, finished map[string]error, steps map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	finished, steps = map[string]error{}, map[string]int{}
	for k, v := range f.finished {
		finished[k] = v
	}
	for k, v := range f.steps {
		steps[k] = v
	}
	return append([]string(nil), f.started...), finished, steps
}

func comp(prompt string, steps int) export.Composition {
	return export.Composition{Prompt: prompt, Steps: steps, Width: 64, Height: 64, Sampler: "euler"}
}

type harness struct {
	clock  *fakeClock
	runner *jobs.Runner
	render *fakeRender
	s      *Scheduler
	frames chan Frame
}

func newHarness(t *testing.T, gated bool) *harness {
	t.Helper()
	h := &harness{clock: &fakeClock{}, runner: jobs.New(), render: newFakeRender(gated), frames: make(chan Frame, 100)}
	t.Cleanup(h.runner.Close)
	h.s = New(h.runner, h.render.render, h.clock, 0)
	h.s.OnFrame(func(f Frame) { h.frames <- f })
	return h
}

// next waits for the next frame; the deadline only guards against a hang.
func (h *harness) next(t *testing.T) Frame {
	t.Helper()
	select {
	case f := <-h.frames:
		return f
	case <-time.After(20 * time.Second):
		t.Fatal("no frame")
		return Frame{}
	}
}

// final reads frames up to the final (or error) frame.
func (h *harness) final(t *testing.T) (steps []Frame, last Frame) {
	t.Helper()
	for {
		f := h.next(t)
		if f.Final || f.Err != nil {
			return steps, f
		}
		steps = append(steps, f)
	}
}

func (h *harness) inflight() *flight {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.inflight
}

func TestDebounceRendersOnlyTheLastChange(t *testing.T) {
	h := newHarness(t, false)
	h.s.Request(comp("a", 2))
	h.clock.Advance(100 * time.Millisecond)
	h.s.Request(comp("ab", 2))
	h.clock.Advance(100 * time.Millisecond)
	h.s.Request(comp("abc", 2))
	h.clock.Advance(DefaultDelay - time.Millisecond)
	if h.inflight() != nil {
		t.Fatal("a preview started before the debounce delay passed")
	}
	if !h.s.Busy() {
		t.Fatal("Busy is false with a request waiting")
	}
	h.clock.Advance(time.Millisecond)
	steps, last := h.final(t)
	if last.Err != nil || last.Composition.Prompt != "abc" || last.Image == nil || last.Image.Bounds().Dx() != 8 {
		t.Fatalf("final frame %+v", last)
	}
	if len(steps) != 2 || steps[0].Step != 1 || steps[1].Step != 2 || steps[0].Total != 2 {
		t.Fatalf("step frames %+v", steps)
	}
	started, _, _ := h.render.snapshot()
	if len(started) != 1 || started[0] != "abc" {
		t.Fatalf("rendered %q, want only \"abc\"", started)
	}
}

// A change while a preview renders cancels it at once: the old render
// reports no further step, and none of its frames arrive afterwards.
func TestChangeCancelsInFlightWithinOneStep(t *testing.T) {
	h := newHarness(t, true)
	h.s.Request(comp("old", 50))
	h.clock.Advance(DefaultDelay)
	if f := h.next(t); f.Step != 1 || f.Composition.Prompt != "old" {
		t.Fatalf("first frame %+v", f)
	}
	job := h.inflight().job
	h.s.Request(comp("new", 3)) // the old render is parked in step 1
	if err := job.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("old preview ended with %v, want context.Canceled", err)
	}
	_, finished, steps := h.render.snapshot()
	if steps["old"] != 1 || !errors.Is(finished["old"], context.Canceled) {
		t.Fatalf("old render did %d steps and returned %v; want 1 and cancelled", steps["old"], finished["old"])
	}
	select {
	case f := <-h.frames:
		t.Fatalf("frame after the change: %+v", f)
	default:
	}
	close(h.render.gate) // steps no longer wait
	h.clock.Advance(DefaultDelay)
	_, last := h.final(t)
	if last.Composition.Prompt != "new" {
		t.Fatalf("final frame for %q", last.Composition.Prompt)
	}
}

// Many changes during a render: only the newest is rendered after it.
func TestNewestWins(t *testing.T) {
	h := newHarness(t, true)
	h.s.Request(comp("first", 5))
	h.clock.Advance(DefaultDelay)
	h.next(t)
	for _, p := range []string{"x", "xy", "xyz", "last"} {
		h.s.Request(comp(p, 2))
		h.clock.Advance(DefaultDelay / 3)
	}
	close(h.render.gate)
	h.clock.Advance(DefaultDelay)
	steps, last := h.final(t)
	for _, f := range append(steps, last) {
		if f.Composition.Prompt != "last" {
			t.Fatalf("frame of %q delivered", f.Composition.Prompt)
		}
	}
	started, _, _ := h.render.snapshot()
	if len(started) != 2 || started[0] != "first" || started[1] != "last" {
		t.Fatalf("rendered %q, want [first last]", started)
	}
}

func TestUnchangedRequestIsNotRenderedAgain(t *testing.T) {
	h := newHarness(t, false)
	c := comp("same", 1)
	h.s.Request(c)
	h.clock.Advance(DefaultDelay)
	h.final(t)
	h.runner.Submit(jobs.Preview, "sync", func(context.Context) error { return nil }).Wait()
	h.s.Request(c)
	h.clock.Advance(DefaultDelay)
	if h.s.Busy() {
		t.Fatal("an unchanged request started a preview")
	}
	h.s.Refresh(c)
	h.clock.Advance(DefaultDelay)
	h.final(t)
	if started, _, _ := h.render.snapshot(); len(started) != 2 {
		t.Fatalf("rendered %d times, want 2 (first and refresh)", len(started))
	}
}

func TestRenderErrorIsAFrame(t *testing.T) {
	h := newHarness(t, false)
	h.render.err = errors.New("bad size")
	h.s.Request(comp("x", 1))
	h.clock.Advance(DefaultDelay)
	_, last := h.final(t)
	if last.Err == nil || last.Err.Error() != "bad size" || last.Final {
		t.Fatalf("frame %+v", last)
	}
}

func TestCancelAndStop(t *testing.T) {
	h := newHarness(t, true)
	h.s.Request(comp("x", 3))
	h.clock.Advance(DefaultDelay)
	h.next(t)
	job := h.inflight().job
	h.s.Cancel()
	if err := job.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled preview ended with %v", err)
	}
	h.s.Request(comp("y", 1))
	h.s.Stop()
	h.clock.Advance(DefaultDelay)
	h.s.Request(comp("z", 1))
	h.clock.Advance(DefaultDelay)
	if h.s.Busy() {
		t.Fatal("stopped scheduler still has work")
	}
	if started, _, _ := h.render.snapshot(); len(started) != 1 {
		t.Fatalf("rendered %q after Stop", started)
	}
}

// The real clock path, with a short delay.
func TestSystemClock(t *testing.T) {
	runner := jobs.New()
	defer runner.Close()
	frames := make(chan Frame, 10)
	s := New(runner, newFakeRender(false).render, nil, time.Millisecond)
	s.OnFrame(func(f Frame) { frames <- f })
	s.Request(comp("real", 1))
	for {
		select {
		case f := <-frames:
			if f.Final {
				return
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no final frame")
		}
	}
}
