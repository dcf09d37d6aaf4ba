package app

import (
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/app/settings"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// The threads setting reaches the loaded model's backend: at load, on a
// change, and back to the physical core count when set to 0 (automatic).
func TestThreadsSettingReachesBackend(t *testing.T) {
	model := golden.Path(t, "tiny_diffusers")
	s, err := OpenStudio(Options{ConfigDir: t.TempDir(), PreviewDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	auto := cpu.DefaultThreads()
	// Values other than the automatic count, so that each step shows.
	first, second := auto+2, auto+5
	set := func(n int) {
		t.Helper()
		if err := s.Settings.Update(func(v *settings.Settings) { v.Threads = n }); err != nil {
			t.Fatal(err)
		}
	}
	threads := func() int {
		t.Helper()
		p, _ := s.Models.Current()
		if p == nil {
			t.Fatalf("no model; status %q", s.Status())
		}
		return p.Engine.B.Threads()
	}

	set(first) // before any model: applies to the next load
	wait(t, s.OpenModel(model), "model load")
	if got := threads(); got != first {
		t.Fatalf("threads after load with setting %d: %d", first, got)
	}
	set(second)
	if got := threads(); got != second {
		t.Fatalf("threads after setting %d: %d", second, got)
	}
	set(0)
	if got := threads(); got != auto {
		t.Fatalf("threads after setting 0 (automatic): %d, want the %d physical cores", got, auto)
	}
	set(first)
	wait(t, s.OpenModel(model), "model reload")
	if got := threads(); got != first {
		t.Fatalf("threads after a reload with setting %d: %d", first, got)
	}
	set(0)
	wait(t, s.OpenModel(model), "model reload")
	if got := threads(); got != auto {
		t.Fatalf("threads after a reload with setting 0: %d, want %d", got, auto)
	}
}

func TestThreadCount(t *testing.T) {
	for _, c := range []struct{ setting, want int }{{0, cpu.DefaultThreads()}, {1, 1}, {7, 7}} {
		if got := threadCount(c.setting); got != c.want {
			t.Errorf("threadCount(%d) = %d, want %d", c.setting, got, c.want)
		}
	}
}
