package perf

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Usage is what one measured run cost the process: wall and CPU time, Go
// heap allocations, garbage collections and page faults. It shows whether a
// run is steady (no allocation, no collection, no faults once buffers are
// reused) and whether the cores stay busy (CPU / wall near the thread count).
type Usage struct {
	Wall        time.Duration
	User, Sys   time.Duration // CPU time of the whole process (0: unknown)
	AllocBytes  uint64        // Go heap bytes allocated (runtime.MemStats.TotalAlloc)
	Mallocs     uint64        // Go heap objects allocated
	GCs         uint32        // garbage collections completed
	MinorFaults int64         // page faults served without I/O (-1: unknown)
	MajorFaults int64         // page faults that read from disk (-1: unknown)
}

// CPU is user plus system time.
func (u Usage) CPU() time.Duration { return u.User + u.Sys }

// Cores is the average number of cores busy: CPU time over wall time (0
// when unknown).
func (u Usage) Cores() float64 {
	if u.Wall <= 0 {
		return 0
	}
	return u.CPU().Seconds() / u.Wall.Seconds()
}

// snapshot is the process counters at one moment.
type snapshot struct {
	at           time.Time
	user, sys    time.Duration
	minor, major int64
	alloc, mall  uint64
	gcs          uint32
}

func takeSnapshot() snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := snapshot{alloc: ms.TotalAlloc, mall: ms.Mallocs, gcs: ms.NumGC}
	s.user, s.sys, s.minor, s.major = processTimes()
	s.at = time.Now()
	return s
}

// since is the usage between s and now.
func (s snapshot) since() Usage {
	wall := time.Since(s.at)
	e := takeSnapshot()
	u := Usage{Wall: wall, User: e.user - s.user, Sys: e.sys - s.sys,
		AllocBytes: e.alloc - s.alloc, Mallocs: e.mall - s.mall, GCs: e.gcs - s.gcs,
		MinorFaults: -1, MajorFaults: -1}
	if s.minor >= 0 && e.minor >= 0 {
		u.MinorFaults, u.MajorFaults = e.minor-s.minor, e.major-s.major
	}
	return u
}

// measure runs fn n times and returns the shortest wall time and the usage
// of the last run (after n-1 warm-up runs: the steady state when n > 1).
func measure(ctx context.Context, n int, fn func(context.Context) error) (time.Duration, Usage, error) {
	var fastest time.Duration
	var last Usage
	for i := range n {
		s := takeSnapshot()
		if err := fn(ctx); err != nil {
			return 0, Usage{}, err
		}
		last = s.since()
		if i == 0 || last.Wall < fastest {
			fastest = last.Wall
		}
	}
	return fastest, last, nil
}

// SpinTime is how long Run's control spins after each size's CFG steps.
const SpinTime = 500 * time.Millisecond

// Spin keeps threads goroutines busy with arithmetic for d and returns
// what that cost. It is the control for Usage.Cores: on a virtual machine
// the host may run its cores only part of the time, which the process's
// CPU time cannot tell from the process idling, so a CFG step's CPU
// figure means something only beside what a loop that never waits got in
// the same minute.
func Spin(threads int, d time.Duration) Usage {
	s := takeSnapshot()
	deadline := s.at.Add(d)
	var wg sync.WaitGroup
	sums := make([]float64, threads)
	for i := range threads {
		wg.Go(func() {
			x := 1.0
			for time.Now().Before(deadline) {
				for range 1 << 14 {
					x = x*0.999999 + 1e-6
				}
			}
			sums[i] = x
		})
	}
	wg.Wait()
	runtime.KeepAlive(sums)
	return s.since()
}
