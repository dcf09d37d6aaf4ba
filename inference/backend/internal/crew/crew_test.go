package crew

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runAll runs a loop of tasks on c and checks that every task ran once.
func runAll(t *testing.T, c *Crew, helpers, tasks int) {
	t.Helper()
	counts := make([]atomic.Int32, max(tasks, 0))
	c.Run(helpers, tasks, func(task int) { counts[task].Add(1) })
	for i := range counts {
		if n := counts[i].Load(); n != 1 {
			t.Fatalf("helpers %d, tasks %d: task %d ran %d times", helpers, tasks, i, n)
		}
	}
}

func TestRunEveryTaskOnce(t *testing.T) {
	for _, c := range []*Crew{nil, New(0), New(DefaultLinger), New(time.Second)} {
		for _, helpers := range []int{-1, 0, 1, 3, 16} {
			for _, tasks := range []int{0, 1, 2, 7, 100} {
				runAll(t, c, helpers, tasks)
			}
		}
	}
}

func TestRunUsesHelpers(t *testing.T) {
	// Two tasks that each wait for the other can only finish if they run
	// at once, on the caller and a helper.
	for _, c := range []*Crew{nil, New(time.Second)} {
		for range 50 {
			var a, b sync.WaitGroup
			a.Add(1)
			b.Add(1)
			c.Run(1, 2, func(task int) {
				if task == 0 {
					a.Done()
					b.Wait()
				} else {
					b.Done()
					a.Wait()
				}
			})
		}
	}
}

func TestConcurrentRuns(t *testing.T) {
	c := New(DefaultLinger)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				runAll(t, c, 1+g%3, 1+i%9)
			}
		})
	}
	wg.Wait()
}

func TestNestedRuns(t *testing.T) {
	c := New(DefaultLinger)
	var total atomic.Int32
	c.Run(3, 4, func(int) {
		c.Run(2, 5, func(int) { total.Add(1) })
	})
	if total.Load() != 20 {
		t.Fatalf("nested loops ran %d inner tasks, want 20", total.Load())
	}
}

func TestHelpersLeave(t *testing.T) {
	c := New(time.Millisecond)
	for i := range 100 {
		runAll(t, c, 3, 4+i%3)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.live.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d helpers 5 s after the last loop", c.live.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if n := c.idle.Load(); n != 0 {
		t.Fatalf("idle count %d after every helper left", n)
	}
}

func TestLingeringHelperTakesNextLoop(t *testing.T) {
	c := New(10 * time.Second) // long enough that it cannot leave during the test
	runAll(t, c, 1, 2)
	// Once the first loop's helper is polling, the next loop must go to
	// it rather than to a new goroutine.
	deadline := time.Now().Add(5 * time.Second)
	for c.idle.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the helper never went back to polling")
		}
		runtime.Gosched()
	}
	runAll(t, c, 1, 2)
	if n := c.live.Load(); n != 1 {
		t.Fatalf("%d helpers after the second loop, want the first one only", n)
	}
}

func BenchmarkRun(b *testing.B) {
	var sink atomic.Int64
	work := func(task int) {
		s := 0
		for i := range 2000 {
			s += i ^ task
		}
		sink.Add(int64(s))
	}
	for _, bc := range []struct {
		name string
		c    *Crew
	}{{"fresh", nil}, {"linger", New(DefaultLinger)}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				bc.c.Run(1, 2, work)
			}
		})
	}
}
