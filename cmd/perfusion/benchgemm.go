package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
)

// defaultGemmShapes (M×N×K) are the 3×3 convolutions of the SD1.5 UNet at a
// 64×64 latent as issue 11 writes them (M pixels, N output channels, K
// input channels × 9), the same in the orientation the runtime's conv2d
// calls (M output channels, N pixels), and the square reference.
const defaultGemmShapes = "4096x320x2880,1024x640x5760,256x1280x11520," +
	"320x4096x2880,640x1024x5760,1280x256x11520,2048x2048x2048"

// gemmRounds is the default number of interleaved rounds of --gemm.
const gemmRounds = 5

// skylakeX is the OpenBLAS core with its AVX-512 kernels.
const skylakeX = "SkylakeX"

// gemmOptions are the settings of `perfusion bench --gemm`.
type gemmOptions struct {
	compare bool // --gemm: compare with the platform BLAS
	serve   bool // --gemm-serve: the child side
	shapes  []bench.Shape
	rounds  int
	threads int // 0: cpu.DefaultThreads()
	// child makes the command of a --gemm-serve process (env aside); nil
	// runs this program again. Tests set it.
	child func(ctx context.Context, threads int) (*exec.Cmd, error)
}

// gemmFlagValues holds the parsed flag values until options() checks them.
type gemmFlagValues struct {
	compare, serve *bool
	shapes         *string
	threads        *threadsFlag
}

func gemmFlags(fs *flag.FlagSet) gemmFlagValues {
	v := gemmFlagValues{
		compare: fs.Bool("gemm", false, "instead of the stages, time this build's GEMM against the platform BLAS (OpenBLAS with OPENBLAS_CORETYPE="+skylakeX+
			", and with the environment as it is, each in a child process), interleaved, the best of --steps rounds (default 5), in GFLOP/s with ratios"),
		serve:   fs.Bool("gemm-serve", false, "the child side of --gemm: answer GEMM timing requests on stdin with the platform BLAS"),
		shapes:  fs.String("gemm-shapes", defaultGemmShapes, "GEMM shapes of --gemm as MxNxK (C[M,N] = A[M,K]·B[K,N]), comma-separated"),
		threads: new(threadsFlag),
	}
	addThreadsFlag(fs, v.threads)
	return v
}

// options checks the values; steps is --steps, which sets the rounds of
// --gemm when given.
func (v gemmFlagValues) options(fs *flag.FlagSet, steps int) (gemmOptions, error) {
	o := gemmOptions{compare: *v.compare, serve: *v.serve, threads: int(*v.threads), rounds: gemmRounds}
	if err := v.threads.check(fs); err != nil {
		return o, err
	}
	if o.compare && o.serve {
		return o, fmt.Errorf("%w: --gemm and --gemm-serve exclude each other", errUsage)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "steps" {
			o.rounds = steps
		}
	})
	if o.rounds < 1 {
		return o, fmt.Errorf("%w: --steps %d: want at least 1", errUsage, o.rounds)
	}
	for _, s := range strings.Split(*v.shapes, ",") {
		sh, err := bench.ParseShape(s)
		if err != nil {
			return o, fmt.Errorf("%w: --gemm-shapes: %v", errUsage, err)
		}
		o.shapes = append(o.shapes, sh)
	}
	return o, nil
}

func (o gemmOptions) threadCount() int { return threadsFlag(o.threads).count() }

// serveGemm is `perfusion bench --gemm-serve`: it times GEMMs with the
// platform BLAS as bench.Serve's requests on r ask.
func serveGemm(ctx context.Context, o gemmOptions, r io.Reader, w io.Writer) error {
	be, ok := cpu.NewBLAS()
	if !ok {
		return errors.New("bench --gemm-serve: this build links no platform BLAS")
	}
	be.SetThreads(o.threadCount())
	return bench.Serve(ctx, r, w, be)
}

// gemmChild is a `perfusion bench --gemm-serve` process.
type gemmChild struct {
	*bench.Client
	cmd   *exec.Cmd
	stdin io.WriteCloser
	label string
}

// startGemmChild starts this program as a GEMM server with env (nil: the
// environment as is) and reads its greeting.
func startGemmChild(ctx context.Context, o gemmOptions, env []string, stderr io.Writer) (*gemmChild, error) {
	newCmd := o.child
	if newCmd == nil {
		newCmd = selfGemmServer
	}
	cmd, err := newCmd(ctx, o.threadCount())
	if err != nil {
		return nil, fmt.Errorf("start gemm child: %w", err)
	}
	cmd.Env, cmd.Stderr = env, stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start gemm child: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start gemm child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gemm child: %w", err)
	}
	c := &gemmChild{cmd: cmd, stdin: stdin}
	if c.Client, err = bench.NewClient(stdin, stdout); err != nil {
		c.close()
		return nil, fmt.Errorf("start gemm child: %w", err)
	}
	c.label = strings.TrimPrefix(c.Name(), "cpu/")
	if c.Core() != "" {
		c.label += "-" + c.Core()
	}
	return c, nil
}

// selfGemmServer is the command that runs this program as a GEMM server.
func selfGemmServer(ctx context.Context, threads int) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, exe, "bench", "--gemm-serve", "--threads", fmt.Sprint(threads)), nil
}

// close ends the child: the end of its input stops it.
func (c *gemmChild) close() {
	c.stdin.Close()
	c.cmd.Wait() // its errors went to stderr already
}

// withEnv returns env with key set to value (replacing any earlier value).
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// compareGemm is `perfusion bench --gemm`: the default backend's GEMM in
// this process against the platform BLAS in child processes, one with
// OPENBLAS_CORETYPE=SkylakeX and one with the environment as is (OpenBLAS
// reads the variable once, when it loads), interleaved.
func compareGemm(ctx context.Context, o gemmOptions, stdout, stderr io.Writer) error {
	threads := o.threadCount()
	ours := cpu.New()
	ours.SetThreads(threads)
	runners := []bench.Runner{bench.NewTimer(ours)}
	labels := []string{strings.TrimPrefix(ours.Name(), "cpu/")}

	if _, ok := cpu.NewBLAS(); !ok {
		fmt.Fprintln(stderr, "bench: this build links no platform BLAS; timing this backend alone")
	} else {
		var envs [][]string
		// OpenBLAS on a CPU that runs AVX-512: a child under SkylakeX too.
		if bench.BLASCore() != "" && bench.CanRunAVX512() {
			envs = append(envs, withEnv(os.Environ(), "OPENBLAS_CORETYPE", skylakeX))
		}
		envs = append(envs, nil)
		for _, env := range envs {
			c, err := startGemmChild(ctx, o, env, stderr)
			if err != nil {
				return err
			}
			defer c.close()
			label := c.label
			if env == nil {
				label += "(env)"
			}
			runners, labels = append(runners, c), append(labels, label)
		}
	}

	fmt.Fprintf(stderr, "bench: GEMM, %d shapes, %d threads, %d interleaved rounds\n", len(o.shapes), threads, o.rounds)
	start := time.Now()
	best, err := bench.Compare(ctx, o.shapes, runners, o.rounds, func(r int) {
		fmt.Fprintf(stderr, "bench: round %d of %d done (%.1f s)\n", r, o.rounds, time.Since(start).Seconds())
	})
	if err != nil {
		return err
	}
	return writeGemmTable(stdout, o, threads, labels, best)
}

// writeGemmTable prints GFLOP/s per shape and runner, and the speed of the
// first runner (this backend) relative to each of the others (above 1:
// this backend is faster).
func writeGemmTable(w io.Writer, o gemmOptions, threads int, labels []string, best [][]time.Duration) error {
	fmt.Fprintf(w, "GEMM C[M,N] = A[M,K]·B[K,N], float32, threads %d, best of %d interleaved rounds, GFLOP/s\n", threads, o.rounds)
	fmt.Fprintf(w, "environment: OPENBLAS_CORETYPE=%q OPENBLAS_L2_SIZE=%q\n",
		os.Getenv("OPENBLAS_CORETYPE"), os.Getenv("OPENBLAS_L2_SIZE"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "MxNxK\t")
	for _, l := range labels {
		fmt.Fprintf(tw, "%s\t", l)
	}
	for _, l := range labels[1:] {
		fmt.Fprintf(tw, "vs %s\t", l)
	}
	fmt.Fprintln(tw)
	for i, s := range o.shapes {
		fmt.Fprintf(tw, "%v\t", s)
		for _, d := range best[i] {
			fmt.Fprintf(tw, "%.1f\t", bench.GFLOPs(s, d))
		}
		for _, d := range best[i][1:] {
			fmt.Fprintf(tw, "%.2f\t", d.Seconds()/best[i][0].Seconds())
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: write table: %w", err)
	}
	return nil
}
