package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// Memory policy. Go's collector lets garbage grow to the size of the live
// heap before collecting, and a loaded model's live heap is gigabytes of
// weights, so a generation would peak at about twice the weights. The
// program, which owns the process, therefore sets a Go memory limit after
// loading a model: pipeline.MemoryBudget, the weights on the Go heap (not
// those mapped from a .safetensors file) plus the activations of the
// request size plus a margin. The collector then runs more often near the limit; the
// weights hold no pointers, so each collection is cheap. GOGC stays at its
// default: above the weights, the limit is what triggers collections.
//
// A GOMEMLIMIT environment variable wins: the limit is then left alone.

// memoryLimitEnv is the Go runtime's own memory-limit variable.
const memoryLimitEnv = "GOMEMLIMIT"

// setMemoryLimit applies the memory budget of generating batch images of
// width x height with p (the largest request to come). It returns a
// description for a progress line and a function that restores the
// previous limit, for a command that returns to its caller (tests).
func setMemoryLimit(p *pipeline.Pipeline, width, height, batch int) (msg string, restore func()) {
	return limitTo(p.MemoryBudget(width, height, batch), fmt.Sprintf("weights %.2f GB (besides %.2f GB mapped from the file) + activations + margin",
		float64(p.HeapWeightBytes())/1e9, float64(p.MappedBytes())/1e9))
}

// limitTo sets the Go memory limit to budget bytes, unless GOMEMLIMIT set
// one, and returns setMemoryLimit's description (what names what the
// budget holds) and restore.
func limitTo(budget int64, what string) (msg string, restore func()) {
	if v, ok := os.LookupEnv(memoryLimitEnv); ok {
		return fmt.Sprintf("memory limit %s from %s", v, memoryLimitEnv), func() {}
	}
	prev := applyMemoryLimit(budget)
	return fmt.Sprintf("memory limit %.2f GB for the Go heap: %s (set %s to override)", float64(budget)/1e9, what, memoryLimitEnv),
		func() { debug.SetMemoryLimit(prev) }
}

// applyMemoryLimit sets the Go memory limit to budget bytes unless the
// GOMEMLIMIT variable set one, and returns the previous limit. It is the
// desktop app's app.Studio.SetMemoryLimit hook.
func applyMemoryLimit(budget int64) (prev int64) {
	if _, ok := os.LookupEnv(memoryLimitEnv); ok {
		return debug.SetMemoryLimit(-1)
	}
	return debug.SetMemoryLimit(budget)
}

// setTrainMemoryLimit applies the memory budget of a training run with
// settings s (pipeline.TrainingBudget: that of generating s.Micro images
// of s.Size pixels, more when a pass keeps its activations).
func setTrainMemoryLimit(p *pipeline.Pipeline, s train.Settings) (msg string, restore func()) {
	what := "weights + activations recomputed block by block + margin"
	if !s.Recomputes() {
		what = "weights + activations kept for the backward pass + margin"
	}
	return limitTo(p.TrainingBudget(s.Size, s.Micro, !s.Recomputes()), what)
}
