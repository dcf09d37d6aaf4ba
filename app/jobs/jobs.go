// Package jobs runs the studio's model work on one worker goroutine, so
// that one job at a time owns the CPU-heavy models. Queued jobs run by
// priority, previews first, then in submission order; each job has its own
// context, cancelled by Job.Cancel or Runner.Close.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Priority orders queued jobs: lower values run first.
type Priority int

// Priorities, most urgent first.
const (
	Preview  Priority = iota // live previews: short, the user is waiting
	Render                   // final renders and exports the user asked for
	Training                 // long background work
)

// ErrClosed is the error of a job submitted to a closed Runner.
var ErrClosed = errors.New("jobs: runner is closed")

// Job is one piece of submitted work.
type Job struct {
	Name     string
	Priority Priority

	fn     func(ctx context.Context) error
	ctx    context.Context
	cancel context.CancelFunc
	seq    uint64
	done   chan struct{}
	err    error // set before done is closed
}

// Cancel cancels the job: a queued job will not run, a running one sees
// its context cancelled. Cancelling a finished job does nothing.
func (j *Job) Cancel() { j.cancel() }

// Done is closed when the job has finished, run or not.
func (j *Job) Done() <-chan struct{} { return j.done }

// Err is the job's result once Done is closed: the function's error, or
// the context's error if it was cancelled before it ran.
func (j *Job) Err() error {
	select {
	case <-j.done:
		return j.err
	default:
		return nil
	}
}

// Wait blocks until the job has finished and returns its error.
func (j *Job) Wait() error {
	<-j.done
	return j.err
}

// Runner is a single worker with a priority queue. The zero value is not
// usable; call New.
type Runner struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	queue  []*Job
	seq    uint64
	closed bool
	wake   chan struct{} // buffered 1: something was queued or closed
	exited chan struct{}
}

// New starts a Runner's worker.
func New() *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), exited: make(chan struct{})}
	go r.work()
	return r
}

// Submit queues fn to run with priority p. fn gets a context that is
// cancelled when the job is cancelled or the runner closed; it should
// return soon after.
func (r *Runner) Submit(p Priority, name string, fn func(ctx context.Context) error) *Job {
	ctx, cancel := context.WithCancel(r.ctx)
	j := &Job{Name: name, Priority: p, fn: fn, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		j.finish(ErrClosed)
		return j
	}
	r.seq++
	j.seq = r.seq
	r.queue = append(r.queue, j)
	r.mu.Unlock()
	r.signal()
	return j
}

// Pending is the number of queued jobs not yet started.
func (r *Runner) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

// Close cancels every queued and running job and waits for the worker to
// stop. Later Submits fail with ErrClosed.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.signal()
	<-r.exited
}

func (r *Runner) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// work runs jobs until the runner is closed, then finishes what is queued
// with ErrClosed.
func (r *Runner) work() {
	defer close(r.exited)
	for {
		j, closed := r.next()
		if closed {
			r.mu.Lock()
			rest := r.queue
			r.queue = nil
			r.mu.Unlock()
			for _, j := range rest {
				j.cancel()
				j.finish(ErrClosed)
			}
			return
		}
		if j == nil {
			<-r.wake
			continue
		}
		j.run()
	}
}

// next takes the most urgent queued job, or nil when none is queued.
func (r *Runner) next() (*Job, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, true
	}
	best := -1
	for i, j := range r.queue {
		if best < 0 || j.Priority < r.queue[best].Priority ||
			(j.Priority == r.queue[best].Priority && j.seq < r.queue[best].seq) {
			best = i
		}
	}
	if best < 0 {
		return nil, false
	}
	j := r.queue[best]
	r.queue = append(r.queue[:best], r.queue[best+1:]...)
	return j, false
}

// run runs the job unless it was cancelled while queued, turning a panic
// into an error so one bad job does not take the app down.
func (j *Job) run() {
	defer j.cancel()
	if err := j.ctx.Err(); err != nil {
		j.finish(err)
		return
	}
	var err error
	func() {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("jobs: %s failed: %v", j.Name, v)
			}
		}()
		err = j.fn(j.ctx)
	}()
	j.finish(err)
}

func (j *Job) finish(err error) {
	j.err = err
	close(j.done)
}
