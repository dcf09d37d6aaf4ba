package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/pipeline/perf"
)

// trainBenchOptions are the settings of `perfusion bench --train`.
type trainBenchOptions struct {
	on        bool                // --train
	recompute train.RecomputeMode // --recompute
	noLimit   bool                // --no-memory-limit
	profile   string              // --cpuprofile: CPU profile of the samples
}

// trainBenchFlagValues holds the parsed flag values until options() checks them.
type trainBenchFlagValues struct {
	on, noLimit *bool
	recompute   *string
	profile     *string
}

func trainBenchFlags(fs *flag.FlagSet) trainBenchFlagValues {
	return trainBenchFlagValues{
		on: fs.Bool("train", false, "instead of the stages, time one UNet forward and one Perfusion training sample (text encoder, edited UNet, backward to the embedding and every o*_V; batch 1) "+
			"side by side at each size, with their ratio, allocations and peak resident memory"),
		recompute: fs.String("recompute", "auto", "--train: activation recomputation, auto (as training decides: on above one 512×512 sample per pass), on or off"),
		noLimit:   fs.Bool("no-memory-limit", false, "--train: do not set the Go memory limit that perfusion train sets"),
		profile:   fs.String("cpuprofile", "", "--train: write a CPU profile of the timed runs (forwards and training samples; every size, a file each) to this file"),
	}
}

func (v trainBenchFlagValues) options() (trainBenchOptions, error) {
	o := trainBenchOptions{on: *v.on, noLimit: *v.noLimit, profile: *v.profile}
	switch strings.ToLower(*v.recompute) {
	case "auto":
		o.recompute = train.RecomputeAuto
	case "on":
		o.recompute = train.RecomputeOn
	case "off":
		o.recompute = train.RecomputeOff
	default:
		return o, fmt.Errorf("%w: --recompute %q: want auto, on or off", errUsage, *v.recompute)
	}
	return o, nil
}

// trainBenchRow is one size's figures.
type trainBenchRow struct {
	size                   int
	recompute              bool
	forward, sample        time.Duration // best of the reps
	fwdCPU, sampleCPU      time.Duration // process CPU time (user + system) of the same reps (0: unknown)
	fwdAlloc, sampleAlloc  uint64        // bytes allocated by one (the last)
	fwdMallocs, sampleMall uint64        // allocations by one (the last)
	fwdPeak, samplePeak    int64         // peak RSS over the first forward, over every sample (0: unknown)
}

// allocsOf runs fn and returns the bytes and objects it allocated.
func allocsOf(fn func() error) (bytes, mallocs uint64, err error) {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	err = fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc, b.Mallocs - a.Mallocs, err
}

// runTrainBench is `perfusion bench --train`.
func runTrainBench(ctx context.Context, opt perf.Options, to trainBenchOptions, stdout, stderr io.Writer) error {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", args...) }
	opt.Log = func(msg string) { fmt.Fprintln(stderr, "bench:", msg) }
	b, err := perf.Prepare(ctx, opt)
	if err != nil {
		return err
	}
	p := b.P
	d := p.CLIP.Config.HiddenSize
	inv := make([]float64, d*d) // C⁻¹ = I: the metric's values do not change the work
	for i := range d {
		inv[i*d+i] = 1
	}
	metric, err := edit.NewDenseMetric(inv, d)
	if err != nil {
		return err
	}
	var rows []trainBenchRow
	for _, size := range opt.Sizes {
		s, err := train.PresetSettings(train.Quick)
		if err != nil {
			return err
		}
		s.Size, s.Batch, s.Micro, s.Recompute = size, 1, 1, to.recompute
		restore := func() {}
		if !to.noLimit {
			var msg string
			msg, restore = setTrainMemoryLimit(p, s)
			logf("%d px: %s", size, msg)
		}
		prof := to.profile
		if prof != "" && len(opt.Sizes) > 1 {
			prof = fmt.Sprintf("%s.%d", prof, size)
		}
		row, err := trainBenchSize(ctx, p, metric, "a", s, opt.Reps, prof, logf) // "a": one token of the byte vocabulary
		restore()
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	return writeTrainBench(stdout, b, opt, rows)
}

// trainBenchSize measures one size: reps forwards and reps samples,
// interleaved (forward, sample, forward, ...) so that a machine that slows
// down or speeds up over the run moves both alike, the fastest of each
// kept. class is the superordinate word, one token. A CPU profile of the
// runs (both kinds; pprof's -focus=Sample picks the samples) goes to the
// file prof unless it is "".
func trainBenchSize(ctx context.Context, p *pipeline.Pipeline, m edit.Metric, class string, s train.Settings, reps int, prof string, logf func(string, ...any)) (trainBenchRow, error) {
	row := trainBenchRow{size: s.Size, recompute: s.Recomputes()}
	pb, err := train.NewProbe(p, m, class, s)
	if err != nil {
		return row, err
	}
	if prof != "" {
		stop, err := startProfile(prof)
		if err != nil {
			return row, err
		}
		defer stop()
	}
	// timed runs fn, keeping its time in *ds and, when it is the fastest
	// so far, its CPU time in *cpu, and raising *peak to the peak RSS over
	// it unless peak is nil; it returns the run's time. No collection is
	// forced between runs, as training forces none between samples: after
	// one, the runtime hands the freed pages back to the system and the
	// next sample maps them again (a 512 px sample then took 7.9-9.0 s
	// instead of 6.0-6.7).
	timed := func(fn func() error, ds *[]time.Duration, cpu *time.Duration, alloc, mallocs *uint64, peak *int64) (time.Duration, error) {
		if peak != nil {
			perf.ResetPeakRSS() // best effort: elsewhere the peak is the process's
		}
		start, c0 := time.Now(), processCPU()
		var err error
		*alloc, *mallocs, err = allocsOf(fn)
		if err != nil {
			return 0, err
		}
		d, c := time.Since(start), processCPU()-c0
		if peak != nil {
			pk, _ := perf.PeakRSS()
			*peak = max(*peak, pk)
		}
		if len(*ds) == 0 || d < slices.Min(*ds) {
			*cpu = c
		}
		*ds = append(*ds, d)
		return d, nil
	}
	var fwds, samples []time.Duration
	runtime.GC() // before the first forward, whose peak RSS is reported
	for i := range reps {
		run, err := pb.ForwardPass()
		if err != nil {
			return row, err
		}
		// The forward's peak is the first one's: later ones start with
		// the pages a sample's activations left mapped.
		fwdPeak := &row.fwdPeak
		if i > 0 {
			fwdPeak = nil
		}
		f, err := timed(func() error { return run(ctx) }, &fwds, &row.fwdCPU, &row.fwdAlloc, &row.fwdMallocs, fwdPeak)
		if err != nil {
			return row, err
		}
		logf("%d px: UNet forward %.2f s", s.Size, f.Seconds())
		d, err := timed(func() error {
			_, err := pb.Sample(ctx)
			return err
		}, &samples, &row.sampleCPU, &row.sampleAlloc, &row.sampleMall, &row.samplePeak)
		if err != nil {
			return row, err
		}
		logf("%d px: training sample %.2f s (%.2f× the forward before it)", s.Size, d.Seconds(), d.Seconds()/f.Seconds())
	}
	row.forward, row.sample = slices.Min(fwds), slices.Min(samples)
	return row, nil
}

// startProfile starts a CPU profile into the file path; stop ends it and
// closes the file.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func writeTrainBench(w io.Writer, b *perf.Bench, opt perf.Options, rows []trainBenchRow) error {
	gb := func(v int64) string {
		if v <= 0 {
			return "?"
		}
		return fmt.Sprintf("%.2f GB", float64(v)/1e9)
	}
	fmt.Fprintf(w, "Perfusion training on SD1.5 shapes (random %s weights, %.2f GB held), batch 1, best of %d; %d threads\n",
		b.DType, float64(b.P.WeightBytes())/1e9, opt.Reps, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "A sample is the text encoder with the concept's embedding, the edited UNet forward, and the backward pass to the embedding and every o*_V;\n")
	fmt.Fprintf(w, "the forward is one plain UNet pass of the same latents. The runs alternate, a forward first.\n")
	fmt.Fprintf(w, "Peak RSS is the process's (weights included) over the first forward, and over the samples.\n")
	fmt.Fprintf(w, "CPU is the process's user + system time in the fastest run of each: on a shared machine its ratio is steadier than the wall time's.\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\trecompute\tforward\tsample\tsample/forward\tCPU forward\tCPU sample\tCPU ratio\tsamples/s\tforward allocs\tsample allocs\tpeak RSS forward\tpeak RSS sample\t")
	for _, r := range rows {
		cpuRatio := "?"
		if r.fwdCPU > 0 && r.sampleCPU > 0 {
			cpuRatio = fmt.Sprintf("%.2f×", r.sampleCPU.Seconds()/r.fwdCPU.Seconds())
		}
		fmt.Fprintf(tw, "%d px\t%v\t%.2f s\t%.2f s\t%.2f×\t%.2f s\t%.2f s\t%s\t%.3f\t%.2f GB / %d\t%.2f GB / %d\t%s\t%s\t\n",
			r.size, r.recompute, r.forward.Seconds(), r.sample.Seconds(), r.sample.Seconds()/r.forward.Seconds(),
			r.fwdCPU.Seconds(), r.sampleCPU.Seconds(), cpuRatio, 1/r.sample.Seconds(),
			float64(r.fwdAlloc)/1e9, r.fwdMallocs, float64(r.sampleAlloc)/1e9, r.sampleMall, gb(r.fwdPeak), gb(r.samplePeak))
	}
	return tw.Flush()
}
