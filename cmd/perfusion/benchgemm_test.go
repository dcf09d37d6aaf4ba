package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
)

func TestGemmFlags(t *testing.T) {
	opt, g, err := parseBench([]string{"--gemm", "--gemm-shapes", "4x5x6, 7x8x9", "--threads", "3"}, new(bytes.Buffer))
	if err == nil && (opt.Engine == nil || opt.Engine.B.Threads() != 3) {
		t.Errorf("--threads 3: the stages' engine is %+v, want 3 threads", opt.Engine)
	}
	if err != nil || !g.compare || g.serve || g.threads != 3 || g.rounds != gemmRounds ||
		!slices.Equal(g.shapes, []bench.Shape{{M: 4, N: 5, K: 6}, {M: 7, N: 8, K: 9}}) {
		t.Errorf("options %+v, %v", g, err)
	}
	if _, g, err := parseBench([]string{"--gemm", "--steps", "9"}, new(bytes.Buffer)); err != nil || g.rounds != 9 || len(g.shapes) != 7 {
		t.Errorf("--steps 9: %+v, %v; want 9 rounds of the 7 default shapes", g, err)
	}
	if _, g, err := parseBench(nil, new(bytes.Buffer)); err != nil || g.compare || g.serve {
		t.Errorf("defaults %+v, %v; want the stages", g, err)
	}
	for _, args := range [][]string{{"--gemm", "--gemm-serve"}, {"--gemm", "--gemm-shapes", "4x5"},
		{"--gemm", "--gemm-shapes", "0x1x1"}, {"--threads", "-1"}} {
		if _, _, err := parseBench(args, new(bytes.Buffer)); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestWithEnv(t *testing.T) {
	got := withEnv([]string{"A=1", "OPENBLAS_CORETYPE=Haswell", "B=OPENBLAS_CORETYPE=x"}, "OPENBLAS_CORETYPE", "SkylakeX")
	want := []string{"A=1", "B=OPENBLAS_CORETYPE=x", "OPENBLAS_CORETYPE=SkylakeX"}
	if !slices.Equal(got, want) {
		t.Errorf("withEnv = %q, want %q", got, want)
	}
}

func TestGemmTable(t *testing.T) {
	o := gemmOptions{shapes: []bench.Shape{{M: 1000, N: 1000, K: 500}}, rounds: 3}
	var buf bytes.Buffer
	err := writeGemmTable(&buf, o, 2, []string{"ours", "other"}, [][]time.Duration{{time.Second, 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "threads 2, best of 3") {
		t.Fatalf("table:\n%s", buf.String())
	}
	if f := strings.Fields(lines[2]); !slices.Equal(f, []string{"MxNxK", "ours", "other", "vs", "other"}) {
		t.Errorf("header %q", f)
	}
	// 1 GFLOP in 1 s and 2 s; ours twice as fast.
	if f := strings.Fields(lines[3]); !slices.Equal(f, []string{"1000x1000x500", "1.0", "0.5", "2.00"}) {
		t.Errorf("row %q, want 1.0 and 0.5 GFLOP/s and a ratio of 2.00", f)
	}
}

// TestGemmHelperProcess is the child of TestCompareGemm, not a test: run
// with PERFUSION_GEMM_HELPER=1, it serves GEMM timings on stdin/stdout.
func TestGemmHelperProcess(t *testing.T) {
	if os.Getenv("PERFUSION_GEMM_HELPER") != "1" {
		t.Skip("the child process of TestCompareGemm")
	}
	err := serveGemm(context.Background(), gemmOptions{threads: 1}, os.Stdin, os.Stdout)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// TestCompareGemm runs --gemm end to end on small shapes, with this test
// binary as the child processes: with a platform BLAS, one child per
// environment (SkylakeX where the CPU runs AVX-512, and the environment as
// is), each reporting the core OpenBLAS loaded.
func TestCompareGemm(t *testing.T) {
	o := gemmOptions{compare: true, rounds: 2, threads: 1,
		shapes: []bench.Shape{{M: 64, N: 48, K: 32}, {M: 17, N: 9, K: 33}},
		child: func(ctx context.Context, threads int) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGemmHelperProcess$")
			return cmd, nil
		},
	}
	// The child sees PERFUSION_GEMM_HELPER through the environment that
	// compareGemm passes on.
	t.Setenv("PERFUSION_GEMM_HELPER", "1")
	var out, errs bytes.Buffer
	if err := compareGemm(context.Background(), o, &out, &errs); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, errs.String())
	}
	t.Logf("\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3+len(o.shapes) {
		t.Fatalf("want a title, the environment, a header and %d rows; got\n%s", len(o.shapes), out.String())
	}
	header := lines[2]
	_, hasBLAS := cpu.NewBLAS()
	runners := 1
	if hasBLAS {
		runners++
		if !strings.Contains(header, "(env)") {
			t.Errorf("header %q: no column for the BLAS under the environment as is", header)
		}
		if bench.BLASCore() != "" && bench.CanRunAVX512() {
			runners++
			if !strings.Contains(header, "-SkylakeX") {
				t.Errorf("header %q: no column for OpenBLAS's SkylakeX kernels (the child did not load them)", header)
			}
		}
	}
	for _, row := range lines[3:] {
		if f := strings.Fields(row); len(f) != 2*runners {
			t.Errorf("row %q: want the shape, %d rates and %d ratios", row, runners, runners-1)
		}
	}
}
