package perf

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

var sink []byte

func TestMeasureCounts(t *testing.T) {
	runs := 0
	d, u, err := measure(context.Background(), 3, func(context.Context) error {
		runs++
		sink = make([]byte, 8<<20) // one 8 MiB object per run
		// Burn 20 ms of CPU however busy the machine is (2 s of wall time
		// where CPU time is unknown).
		u0, s0, _, _ := processTimes()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if u, s, _, _ := processTimes(); u+s-u0-s0 >= 20*time.Millisecond {
				break
			}
		}
		return nil
	})
	if err != nil || runs != 3 {
		t.Fatalf("runs %d, err %v", runs, err)
	}
	if d <= 0 || u.Wall < d {
		t.Errorf("fastest %v, last %v: want a positive time, the last not under the fastest", d, u.Wall)
	}
	if u.AllocBytes < 8<<20 || u.Mallocs < 1 {
		t.Errorf("last run allocated %d bytes in %d objects, want at least 8 MiB in 1", u.AllocBytes, u.Mallocs)
	}
	if runtime.GOOS == "linux" && (u.CPU() < 20*time.Millisecond || u.MinorFaults < 0) {
		t.Errorf("CPU %v, minor faults %d: want the burnt CPU time and known faults", u.CPU(), u.MinorFaults)
	}
	if u.Cores() <= 0 && runtime.GOOS == "linux" {
		t.Errorf("Cores() = %v", u.Cores())
	}
	boom := errors.New("boom")
	if _, _, err := measure(context.Background(), 2, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("error not passed on: %v", err)
	}
}

// Spin runs for its time and, where CPU time is known, costs some: how
// much depends on what else the machine runs (a busy machine gave two
// spinning threads 80 ms of CPU in 100 ms), so only its presence is
// checked.
func TestSpin(t *testing.T) {
	u := Spin(2, 100*time.Millisecond)
	if u.Wall < 100*time.Millisecond {
		t.Errorf("Spin(2, 100ms) returned after %v", u.Wall)
	}
	if runtime.GOOS == "linux" && u.CPU() <= 0 {
		t.Errorf("Spin(2, 100ms) cost %v of CPU, want some", u.CPU())
	}
}
