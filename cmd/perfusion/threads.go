package main

import (
	"flag"
	"fmt"

	"github.com/perfusion-studio/perfusion/app/settings"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/ops"
)

// threadsFlag is --threads: worker threads, 1 to settings.MaxThreads; 0
// (not given) means one per physical core (cpu.DefaultThreads).
type threadsFlag int

// addThreadsFlag defines --threads on fs; check checks it once fs is parsed.
func addThreadsFlag(fs *flag.FlagSet, t *threadsFlag) {
	fs.IntVar((*int)(t), "threads", 0, fmt.Sprintf("worker threads, 1 to %d (default: one per physical core)", settings.MaxThreads))
}

// check refuses a --threads outside 1 to settings.MaxThreads, 0 included
// when given: only its absence means one per physical core.
func (t threadsFlag) check(fs *flag.FlagSet) error {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "threads" })
	if given && (t < 1 || t > settings.MaxThreads) {
		return fmt.Errorf("%w: --threads %d: want a whole number from 1 to %d", errUsage, t, settings.MaxThreads)
	}
	return nil
}

// count is the number of worker threads the flag asks for.
func (t threadsFlag) count() int {
	if t > 0 {
		return int(t)
	}
	return cpu.DefaultThreads()
}

// engine returns a CPU engine with the flag's worker threads, for
// pipeline.LoadOptions.Engine.
func (t threadsFlag) engine() *ops.Engine {
	be := cpu.New()
	be.SetThreads(t.count())
	return ops.NewEngine(be)
}
