package perf

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// SizeMultiple is what the image sides Run measures must be a multiple of:
// the downscale factor of SD1.5's VAE (its UNet takes latents of any size).
const SizeMultiple = 8

// Report is the outcome of Run.
type Report struct {
	Path      string // the checkpoint, when kept (Options.Keep)
	Backend   string // e.g. "cpu/openblas"
	Threads   int
	DType     string
	FileBytes int64
	Write     time.Duration
	Load      time.Duration
	LoadUsage Usage // what loading cost (CPU, allocations, faults)
	LiveHeap  int64 // Go heap in use after loading
	LoadRSS   int64 // peak resident memory after loading (0: unknown)
	// Mapped is the weights' bytes that are views of the mapped file, and
	// HugeMapped how much of the process's file mappings is in 2 MiB pages
	// after the runs (-1: unknown; see Settle).
	Mapped, HugeMapped int64
	PeakGFLOPs         float64       // GEMM peak of the backend, same run
	Text               time.Duration // text encoder, prompt + negative
	Reps               int           // each time is the best of Reps runs
	Rows               []Row
}

// Row holds the measurements at one image size.
type Row struct {
	Size   int           // image side in pixels
	UNet1  time.Duration // UNet forward, batch 1
	UNet2  time.Duration // UNet forward, batch 2: one CFG sampling step
	Decode time.Duration // VAE decode of one image
	FLOPs1 float64       // UNet operations, batch 1
	FLOPs2 float64       // UNet operations, batch 2
	// PeakRSS is the peak resident memory during this size's runs where
	// the peak can be reset (Linux: ResetPeakRSS), else the process's peak
	// so far (0: unknown).
	PeakRSS int64
	// UNetRSS and DecodeRSS split PeakRSS into the UNet and the VAE
	// decoder runs, where the peak can be reset; 0 when unknown.
	UNetRSS, DecodeRSS int64
	// Step and DecodeUsage are what the last CFG step (UNet batch 2) and
	// the last decode cost: after Reps-1 runs of the same work, the steady
	// state (see Usage).
	Step, DecodeUsage Usage
	// Spin is the control measured right after the CFG steps: the
	// backend's thread count spinning for SpinTime (see Spin).
	Spin Usage
}

// GFLOPs is the UNet's achieved speed on the CFG step.
func (r Row) GFLOPs() float64 { return r.FLOPs2 / r.UNet2.Seconds() / 1e9 }

// Image estimates one 20-step image: text encoding, 20 CFG steps, decoding.
func (rep *Report) Image(r Row) time.Duration { return rep.Text + 20*r.UNet2 + r.Decode }

// Run prepares the random model (Prepare), measures the GEMM peak, the text
// encoder, and at each size the UNet at batch 1 and 2 and the VAE decoder,
// each the best of opt.Reps runs.
func Run(ctx context.Context, opt Options) (*Report, error) {
	opt = opt.withDefaults()
	for _, s := range opt.Sizes {
		if s <= 0 || s%SizeMultiple != 0 || s > pipeline.MaxSide {
			return nil, fmt.Errorf("perf: size %d: want a multiple of %d from %d to %d", s, SizeMultiple, SizeMultiple, pipeline.MaxSide)
		}
	}
	b, err := Prepare(ctx, opt)
	if err != nil {
		return nil, err
	}
	be := b.P.Engine.B
	rep := &Report{Backend: be.Name(), Threads: be.Threads(), DType: b.DType, FileBytes: b.FileBytes,
		Write: b.Write, Load: b.Load, LoadUsage: b.LoadUsage, LiveHeap: b.LiveHeap, LoadRSS: b.LoadRSS, Reps: opt.Reps}
	if opt.Keep {
		rep.Path = b.Path
	}
	opt.log("measuring the GEMM peak")
	rep.PeakGFLOPs = b.PeakGFLOPs()
	opt.log("text encoder")
	if rep.Text, err = best(ctx, opt.Reps, b.EncodeText); err != nil {
		return nil, err
	}
	for _, s := range opt.Sizes {
		r := Row{Size: s, FLOPs1: b.UNetFLOPs(s, 1).Total(), FLOPs2: b.UNetFLOPs(s, 2).Total()}
		resettable := ResetPeakRSS() == nil
		opt.log("%dx%d: UNet batch 1", s, s)
		if r.UNet1, err = best(ctx, opt.Reps, func(ctx context.Context) error { return b.UNet(ctx, s, 1) }); err != nil {
			return nil, err
		}
		opt.log("%dx%d: UNet batch 2 (CFG step)", s, s)
		if r.UNet2, r.Step, err = measure(ctx, opt.Reps, func(ctx context.Context) error { return b.UNet(ctx, s, 2) }); err != nil {
			return nil, err
		}
		opt.log("%dx%d: spinning %d threads for %v, the CPU control", s, s, rep.Threads, SpinTime)
		r.Spin = Spin(rep.Threads, SpinTime)
		if resettable {
			r.UNetRSS, _ = PeakRSS()
			resettable = ResetPeakRSS() == nil
		}
		opt.log("%dx%d: VAE decode", s, s)
		if r.Decode, r.DecodeUsage, err = measure(ctx, opt.Reps, func(ctx context.Context) error { return b.Decode(ctx, s) }); err != nil {
			return nil, err
		}
		r.PeakRSS, _ = PeakRSS()
		if resettable {
			r.DecodeRSS = r.PeakRSS
			r.PeakRSS = max(r.UNetRSS, r.DecodeRSS)
		}
		rep.Rows = append(rep.Rows, r)
	}
	rep.Mapped = b.P.MappedBytes()
	if rep.HugeMapped, err = FileHugeMapped(); err != nil {
		rep.HugeMapped = -1
	}
	runtime.KeepAlive(b)
	return rep, nil
}

// best runs fn n times and returns the shortest duration.
func best(ctx context.Context, n int, fn func(context.Context) error) (time.Duration, error) {
	d, _, err := measure(ctx, n, fn)
	return d, err
}

// WriteTable prints the report: a few header lines, then one aligned row
// per size.
func (rep *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "random SD1.5 weights: %.2f GB of %s on disk (written in %s, loaded in %s: %s)\n",
		float64(rep.FileBytes)/1e9, rep.DType, secs(rep.Write), secs(rep.Load), rep.LoadUsage.summary())
	fmt.Fprintf(w, "memory after loading: %s of live Go heap (the weights held in it; mapped float16 weights are page cache), peak RSS so far %s\n", gb(rep.LiveHeap), gb(rep.LoadRSS))
	if rep.Mapped > 0 && rep.HugeMapped >= 0 {
		fmt.Fprintf(w, "mapped float16 weights: %s, read through 2 MiB pages: %s of file mappings after the runs\n", gb(rep.Mapped), gb(rep.HugeMapped))
	}
	fmt.Fprintf(w, "backend %s, %d threads; GEMM peak %.1f GFLOP/s (%d³ float32)\n", rep.Backend, rep.Threads, rep.PeakGFLOPs, bench.PeakSize)
	fmt.Fprintf(w, "text encoder (prompt + negative, 2 x 77 tokens): %s; times are the best of %d\n\n", secs(rep.Text), rep.Reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\tUNet b1\tUNet CFG b2\tVAE decode\tGFLOP/step\tUNet GFLOP/s\tof peak\t20-step image\tpeak RSS\tUNet / VAE\t")
	for _, r := range rep.Rows {
		stages := "n/a"
		if r.UNetRSS > 0 && r.DecodeRSS > 0 {
			stages = gb(r.UNetRSS) + " / " + gb(r.DecodeRSS)
		}
		fmt.Fprintf(tw, "%dx%d\t%s\t%s\t%s\t%.0f\t%.1f\t%.0f%%\t%s\t%s\t%s\t\n", r.Size, r.Size, secs(r.UNet1), secs(r.UNet2), secs(r.Decode),
			r.FLOPs2/1e9, r.GFLOPs(), 100*r.GFLOPs()/rep.PeakGFLOPs, secs(rep.Image(r)), gb(r.PeakRSS), stages)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nwhat the last run of each stage cost (after %d warm-up run(s) of the same work):\n", rep.Reps-1)
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "  %dx%d CFG step: %s\n", r.Size, r.Size, r.Step.summary())
		if r.Spin.CPU() > 0 {
			fmt.Fprintf(w, "  %dx%d control, right after: %d threads that never wait got %.0f%% of one core (the most a step could show here)\n",
				r.Size, r.Size, rep.Threads, 100*r.Spin.Cores())
		}
		fmt.Fprintf(w, "  %dx%d VAE decode: %s\n", r.Size, r.Size, r.DecodeUsage.summary())
	}
	return nil
}

// summary prints a Usage on one line: allocations, collections, CPU use
// and page faults.
func (u Usage) summary() string {
	s := fmt.Sprintf("%.1f MB allocated in %d objects, %d GC", float64(u.AllocBytes)/1e6, u.Mallocs, u.GCs)
	if u.CPU() > 0 {
		s += fmt.Sprintf(", CPU %.2f s (sys %.2f s) = %.0f%% of one core", u.CPU().Seconds(), u.Sys.Seconds(), 100*u.Cores())
	}
	if u.MinorFaults >= 0 {
		s += fmt.Sprintf(", %d minor / %d major page faults", u.MinorFaults, u.MajorFaults)
	}
	return s
}

// gb formats a byte count; 0 is unknown.
func gb(n int64) string {
	if n <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
