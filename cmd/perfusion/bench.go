package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/pipeline/perf"
)

func benchCommand() command {
	return command{
		name:    "bench",
		summary: "time the SD 1.5 stages on this machine (random weights, nothing downloaded)",
		run: func(ctx context.Context, args []string) error {
			return oneLine(runBench(ctx, args, os.Stdout, os.Stderr))
		},
	}
}

// benchOptions parses the flags of `perfusion bench`.
func benchOptions(args []string, stderr io.Writer) (perf.Options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "256,512", fmt.Sprintf("square image sizes in pixels, comma-separated (multiples of %d up to %d)", perf.SizeMultiple, pipeline.MaxSide))
	reps := fs.Int("steps", 2, "timed runs of each stage; the fastest is reported")
	dtype := fs.String("dtype", "f16", "weights written to disk: f16 (as SD1.5 is distributed) or f32")
	dir := fs.String("dir", "", "folder for the temporary checkpoint (2.1 GB in f16, 4.3 GB in f32); default: the system temp folder")
	keep := fs.Bool("keep", false, "keep the random checkpoint (and a vocabulary beside it), e.g. to try perfusion generate on it; its path is printed")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return perf.Options{}, err
		}
		return perf.Options{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return perf.Options{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	opt := perf.Options{Reps: *reps, Dir: *dir, Keep: *keep}
	switch strings.ToLower(*dtype) {
	case "f16", "fp16", "float16":
		opt.DType = "F16"
	case "f32", "fp32", "float32":
		opt.DType = "F32"
	default:
		return opt, fmt.Errorf("%w: --dtype %q: want f16 or f32", errUsage, *dtype)
	}
	if *reps < 1 {
		return opt, fmt.Errorf("%w: --steps %d: want at least 1", errUsage, *reps)
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if m := perf.SizeMultiple; err != nil || n <= 0 || n%m != 0 || n > pipeline.MaxSide {
			return opt, fmt.Errorf("%w: --sizes: %q is not a multiple of %d from %d to %d", errUsage, s, m, m, pipeline.MaxSide)
		}
		opt.Sizes = append(opt.Sizes, n)
	}
	return opt, nil
}

// runBench is `perfusion bench`: progress on stderr, the table on stdout.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opt, err := benchOptions(args, stderr)
	if err != nil {
		return err
	}
	opt.Log = func(msg string) { fmt.Fprintln(stderr, "bench:", msg) }
	restore := func() {}
	opt.Loaded = func(p *pipeline.Pipeline) {
		// The policy of `perfusion generate`, for the largest size.
		var msg string
		msg, restore = setMemoryLimit(p, slices.Max(opt.Sizes), slices.Max(opt.Sizes), 1)
		opt.Log(msg)
	}
	rep, err := perf.Run(ctx, opt)
	restore()
	if err != nil {
		return err
	}
	if opt.Keep {
		fmt.Fprintf(stderr, "bench: kept %s (vocabulary beside it); delete it when done\n", rep.Path)
	}
	return rep.WriteTable(stdout)
}
