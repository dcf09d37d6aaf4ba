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

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/ops"
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

// benchOptions parses the flags of `perfusion bench` for the stages.
func benchOptions(args []string, stderr io.Writer) (perf.Options, error) {
	opt, _, err := parseBench(args, stderr)
	return opt, err
}

// parseBench parses the flags of `perfusion bench`: those of the stages and
// those of the GEMM comparison.
func parseBench(args []string, stderr io.Writer) (perf.Options, gemmOptions, error) {
	opt, g, _, err := parseBenchAll(args, stderr)
	return opt, g, err
}

// parseBenchAll is parseBench with the flags of --train too.
func parseBenchAll(args []string, stderr io.Writer) (perf.Options, gemmOptions, trainBenchOptions, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "256,512", fmt.Sprintf("square image sizes in pixels, comma-separated (multiples of %d up to %d)", perf.SizeMultiple, pipeline.MaxSide))
	reps := fs.Int("steps", 2, "timed runs of each stage; the fastest is reported")
	dtype := fs.String("dtype", "f16", "weights written to disk: f16 (as SD1.5 is distributed) or f32")
	dir := fs.String("dir", "", "folder for the temporary checkpoint (2.1 GB in f16, 4.3 GB in f32); default: the system temp folder")
	keep := fs.Bool("keep", false, "keep the random checkpoint (and a vocabulary beside it), e.g. to try perfusion generate on it; its path is printed")
	g := gemmFlags(fs)
	tf := trainBenchFlags(fs)
	fail := func(err error) (perf.Options, gemmOptions, trainBenchOptions, error) {
		return perf.Options{}, gemmOptions{}, trainBenchOptions{}, err
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return fail(err)
		}
		return fail(fmt.Errorf("%w: %v", errUsage, err))
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0)))
	}
	gopt, err := g.options(fs, *reps)
	if err != nil {
		return fail(err)
	}
	topt, err := tf.options()
	if err != nil {
		return fail(err)
	}
	if topt.on && (gopt.compare || gopt.serve) {
		return fail(fmt.Errorf("%w: --train and --gemm exclude each other", errUsage))
	}
	opt := perf.Options{Reps: *reps, Dir: *dir, Keep: *keep}
	switch strings.ToLower(*dtype) {
	case "f16", "fp16", "float16":
		opt.DType = "F16"
	case "f32", "fp32", "float32":
		opt.DType = "F32"
	default:
		return fail(fmt.Errorf("%w: --dtype %q: want f16 or f32", errUsage, *dtype))
	}
	if *reps < 1 {
		return fail(fmt.Errorf("%w: --steps %d: want at least 1", errUsage, *reps))
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if m := perf.SizeMultiple; err != nil || n <= 0 || n%m != 0 || n > pipeline.MaxSide {
			return fail(fmt.Errorf("%w: --sizes: %q is not a multiple of %d from %d to %d", errUsage, s, m, m, pipeline.MaxSide))
		}
		opt.Sizes = append(opt.Sizes, n)
	}
	if gopt.threads > 0 {
		be := cpu.New()
		be.SetThreads(gopt.threads)
		opt.Engine = ops.NewEngine(be)
	}
	return opt, gopt, topt, nil
}

// runBench is `perfusion bench`: progress on stderr, the table on stdout.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opt, gopt, topt, err := parseBenchAll(args, stderr)
	if err != nil {
		return err
	}
	switch {
	case topt.on:
		return runTrainBench(ctx, opt, topt, stdout, stderr)
	case gopt.serve:
		return serveGemm(ctx, gopt, os.Stdin, stdout)
	case gopt.compare:
		return compareGemm(ctx, gopt, stdout, stderr)
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
