package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// threadsCommand is one computing command's flag parsing and the load
// options its run passes to pipeline.Load.
type threadsCommand struct {
	name string
	base []string // the command's required flags
	load func(args []string, stderr *bytes.Buffer) (pipeline.LoadOptions, error)
}

func threadsCommands() []threadsCommand {
	return []threadsCommand{
		{"generate", []string{"--prompt", "a fox", "--out", "fox.png"}, func(a []string, w *bytes.Buffer) (pipeline.LoadOptions, error) {
			g, err := parseGenerateFlags(a, w)
			return g.loadOptions(nil), err
		}},
		{"train", []string{"--name", "mug", "--class", "mug", "--photos", "a.png", "--out", "mug.concept"}, func(a []string, w *bytes.Buffer) (pipeline.LoadOptions, error) {
			g, err := parseTrainFlags(a, w)
			return g.loadOptions(nil), err
		}},
		{"eval-default", []string{"--work", "w"}, func(a []string, w *bytes.Buffer) (pipeline.LoadOptions, error) {
			g, err := parseEvalFlags(a, w)
			return g.loadOptions(), err
		}},
		{"bench", nil, func(a []string, w *bytes.Buffer) (pipeline.LoadOptions, error) {
			opt, _, err := parseBench(a, w)
			if err == nil && opt.Engine == nil { // perf's default engine
				return pipeline.LoadOptions{Engine: threadsFlag(0).engine()}, nil
			}
			return pipeline.LoadOptions{Engine: opt.Engine}, err
		}},
	}
}

// Every computing command takes --threads N, N from 1 up, and the number
// reaches the backend its model loads on; without it the backend uses the
// physical cores.
func TestThreadsFlag(t *testing.T) {
	auto := cpu.DefaultThreads()
	for _, c := range threadsCommands() {
		for _, n := range []int{1, auto + 3} {
			var stderr bytes.Buffer
			args := append([]string{"--threads", fmt.Sprint(n)}, c.base...)
			opt, err := c.load(args, &stderr)
			if err != nil {
				t.Fatalf("%s %q: %v", c.name, args, err)
			}
			if opt.Engine == nil || opt.Engine.B.Threads() != n {
				t.Errorf("%s --threads %d: engine %+v", c.name, n, opt.Engine)
			}
		}
		var stderr bytes.Buffer
		opt, err := c.load(c.base, &stderr)
		if err != nil || opt.Engine == nil || opt.Engine.B.Threads() != auto {
			t.Errorf("%s without --threads: engine %+v, %v; want the %d physical cores", c.name, opt.Engine, err, auto)
		}
		// Numbers out of range are refused with the range; other text
		// with the flag package's own message, as for every int flag.
		for _, bad := range []string{"0", "-2", "1025", "two", "1.5", ""} {
			stderr.Reset()
			_, err := c.load(append([]string{"--threads", bad}, c.base...), &stderr)
			number := bad == "0" || bad == "-2" || bad == "1025"
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "threads") ||
				number && !strings.Contains(err.Error(), "from 1 to 1024") {
				t.Errorf("%s --threads %q: %v, want a usage error naming the flag (and the range)", c.name, bad, err)
			}
		}
		stderr.Reset()
		if _, err := c.load([]string{"-h"}, &stderr); err == nil || !strings.Contains(stderr.String(), "-threads") {
			t.Errorf("%s -h does not show --threads:\n%s", c.name, stderr.String())
		}
	}
}
