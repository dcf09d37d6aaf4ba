package main

import (
	"context"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// The memory budget becomes the Go memory limit, unless GOMEMLIMIT set
// one; restore puts the previous limit back.
func TestSetMemoryLimit(t *testing.T) {
	p, err := pipeline.Load(context.Background(), golden.Path(t, "tiny_diffusers"), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(memoryLimitEnv, "") // restored after the test
	os.Unsetenv(memoryLimitEnv)
	before := debug.SetMemoryLimit(-1)
	msg, restore := setMemoryLimit(p, 64, 64, 1)
	if got, want := debug.SetMemoryLimit(-1), p.MemoryBudget(64, 64, 1); got != want {
		t.Errorf("limit %d, want the budget %d", got, want)
	}
	if !strings.Contains(msg, "memory limit") || !strings.Contains(msg, "weights") {
		t.Errorf("message %q", msg)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("after restore: limit %d, want %d", got, before)
	}

	t.Setenv(memoryLimitEnv, "8GiB")
	msg, restore = setMemoryLimit(p, 64, 64, 1)
	defer restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("with GOMEMLIMIT set the limit changed to %d", got)
	}
	if !strings.Contains(msg, "8GiB from GOMEMLIMIT") {
		t.Errorf("message %q", msg)
	}
	if prev := applyMemoryLimit(1 << 30); prev != before || debug.SetMemoryLimit(-1) != before {
		t.Error("applyMemoryLimit changed the limit although GOMEMLIMIT is set")
	}
}

// Training sets the budget of its size as the limit when it recomputes
// activations, a larger one when it keeps them, and defers to GOMEMLIMIT.
func TestSetTrainMemoryLimit(t *testing.T) {
	p, err := pipeline.Load(context.Background(), golden.Path(t, "tiny_diffusers"), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(memoryLimitEnv, "")
	os.Unsetenv(memoryLimitEnv)
	before := debug.SetMemoryLimit(-1)
	s, err := train.PresetSettings(train.Quick)
	if err != nil {
		t.Fatal(err)
	}
	s.Size, s.Micro, s.Batch = 64, 2, 2
	s.Recompute = train.RecomputeOn
	_, restore := setTrainMemoryLimit(p, s)
	if got, want := debug.SetMemoryLimit(-1), p.MemoryBudget(64, 64, 2); got != want {
		t.Errorf("recomputing: limit %d, want the budget %d", got, want)
	}
	restore()
	s.Recompute = train.RecomputeOff
	msg, restore := setTrainMemoryLimit(p, s)
	got, want := debug.SetMemoryLimit(-1), p.TrainingBudget(64, 2, true)
	restore()
	if got != want || want <= p.MemoryBudget(64, 64, 2) || !strings.Contains(msg, "activations kept") {
		t.Errorf("keeping activations: limit %d (want %d, above the generation budget %d), message %q", got, want, p.MemoryBudget(64, 64, 2), msg)
	}
	if after := debug.SetMemoryLimit(-1); after != before {
		t.Errorf("restore left the limit at %d, want %d", after, before)
	}
	t.Setenv(memoryLimitEnv, "8GiB")
	msg, restore = setTrainMemoryLimit(p, s)
	defer restore()
	if !strings.Contains(msg, "8GiB from GOMEMLIMIT") {
		t.Errorf("with GOMEMLIMIT: message %q", msg)
	}
}
