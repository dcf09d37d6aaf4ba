// Package crew runs fork-join loops on the calling goroutine and helper
// goroutines that stay a short while after each loop, polling for the
// next one.
//
// A goroutine started for every parallel loop waits for the runtime to
// wake a sleeping thread, which on a virtual machine takes tens of
// microseconds; a UNet step runs thousands of such loops, and the caller
// runs its share alone meanwhile. A helper that is still polling when the
// next loop comes takes it within a microsecond or so. Tasks are claimed
// one at a time, so a helper that starts late, or a core the host takes
// away for a while, leaves its tasks to the others instead of holding up
// the loop.
//
// Call Run from a goroutine that is not locked to its OS thread
// (runtime.LockOSThread, as a GUI toolkit does to the main goroutine): a
// locked caller hands its processor to another thread, and waits for it
// back, every time it yields or blocks, which on 2 cores cost a fifth of
// a UNet step.
package crew

import (
	"runtime"
	"sync/atomic"
	"time"
)

// DefaultLinger is how long a helper polls for the next loop before it
// exits: longer than the serial stretch between two parallel operations
// of a model step, short against anything a person would notice.
const DefaultLinger = 500 * time.Microsecond

// Crew hands loops to lingering helpers. Create it with New; a nil *Crew
// is valid and starts fresh goroutines for every loop, which exit when it
// ends. It is safe for concurrent use. It owns no goroutine for longer
// than its linger time after a loop, so it needs no Close.
type Crew struct {
	jobs   chan *job
	idle   atomic.Int32 // helpers polling jobs, less the jobs sent to them
	live   atomic.Int32 // helpers started and not yet returned
	linger time.Duration
}

// New returns a Crew whose helpers linger for linger after each loop (0:
// they exit at once, as with a nil Crew).
func New(linger time.Duration) *Crew {
	return &Crew{jobs: make(chan *job, 256), linger: linger}
}

// job is one loop: tasks claimed in order, and a channel closed when the
// last one returns.
type job struct {
	fn       func(task int)
	tasks    int64
	next     atomic.Int64
	done     atomic.Int64
	finished chan struct{}
}

// Run calls fn(t) for every t in [0, tasks) on the calling goroutine and
// up to helpers other goroutines, and returns when every call has
// returned. Each goroutine claims the next unclaimed task until none is
// left, so tasks run in no fixed order or place; fn must be safe to run
// concurrently with itself.
func (c *Crew) Run(helpers, tasks int, fn func(task int)) {
	if tasks <= 0 {
		return
	}
	helpers = min(helpers, tasks-1)
	if helpers <= 0 {
		for t := range tasks {
			fn(t)
		}
		return
	}
	j := &job{fn: fn, tasks: int64(tasks), finished: make(chan struct{})}
	for range helpers {
		c.hand(j)
	}
	j.work()
	c.await(j)
}

// await returns once every task of j has returned. It polls, yielding the
// thread between looks, for up to the linger time before it blocks: a
// caller that blocked would give up its thread, and the helper that
// finishes the loop would hand the caller its own thread and wait for a
// sleeping one to wake.
func (c *Crew) await(j *job) {
	finished := func() bool { return j.done.Load() >= j.tasks }
	if !c.pollFor(finished) {
		<-j.finished
	}
}

// pollFor calls ready until it reports true or the linger time has
// passed, yielding the thread between calls, and returns its last answer.
// A nil Crew or one without linger calls it once.
func (c *Crew) pollFor(ready func() bool) bool {
	if c == nil || c.linger <= 0 {
		return ready()
	}
	start := time.Now()
	for i := 1; ; i++ {
		if ready() {
			return true
		}
		if i%32 == 0 && time.Since(start) > c.linger {
			return false
		}
		runtime.Gosched()
	}
}

// work claims and runs tasks until none is left.
func (j *job) work() {
	for {
		t := j.next.Add(1) - 1
		if t >= j.tasks {
			return
		}
		j.fn(int(t))
		if j.done.Add(1) == j.tasks {
			close(j.finished)
		}
	}
}

// hand gives j to a polling helper when there is one, and to a new
// goroutine otherwise. A helper counted in idle is taken by decrementing
// the count; each decrement is matched by one send, and a helper that
// leaves decrements the count itself, so no send waits for a helper that
// has gone.
func (c *Crew) hand(j *job) {
	if c != nil {
		for {
			n := c.idle.Load()
			if n <= 0 {
				break
			}
			if c.idle.CompareAndSwap(n, n-1) {
				c.jobs <- j
				return
			}
		}
		c.live.Add(1)
	}
	go c.help(j)
}

// help runs j, then whatever loops come while it lingers.
func (c *Crew) help(j *job) {
	if c != nil {
		defer c.live.Add(-1)
	}
	for j != nil {
		j.work()
		if c == nil || c.linger <= 0 {
			return
		}
		c.idle.Add(1)
		j = c.poll()
	}
}

// poll waits up to the linger time for a job, yielding the thread between
// looks. It returns nil when the helper should exit: only after taking
// itself off the idle count, and if a loop took it off first, it waits for
// the job that loop is sending.
func (c *Crew) poll() *job {
	var j *job
	received := func() bool {
		select {
		case j = <-c.jobs:
			return true
		default:
			return false
		}
	}
	if c.pollFor(received) {
		return j
	}
	for {
		n := c.idle.Load()
		if n <= 0 {
			return <-c.jobs
		}
		if c.idle.CompareAndSwap(n, n-1) {
			return nil
		}
	}
}
