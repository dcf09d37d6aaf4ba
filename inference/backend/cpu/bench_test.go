package cpu

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu/gemm"
	"github.com/perfusion-studio/perfusion/inference/backend/internal/blas"
)

// benchShapes are SD1.5 GEMMs as (M, K, N): attention projections at 64²
// latents, a 320→320 linear, a K=40 head product, a wide conv as im2col, and
// the square reference.
var benchShapes = [][3]int{
	{320, 2880, 4096}, {4096, 320, 320}, {4096, 40, 4096}, {1280, 11520, 64}, {2048, 2048, 2048},
}

// BenchmarkGemm times, per shape and side by side, a direct cgo call of the
// platform BLAS (when linked), this backend's Gemm and the pure-Go GEMM, all
// on the same thread count: 1, then runtime.NumCPU(). The BLAS runs first;
// the others also report their ratio to it ("xblas").
func BenchmarkGemm(b *testing.B) {
	for _, threads := range threadCounts() {
		benchGemm(b, threads)
	}
}

func threadCounts() []int {
	if n := runtime.NumCPU(); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

func benchGemm(b *testing.B, threads int) {
	be := New()
	be.SetThreads(threads)
	var pure gemm.Engine
	type run struct {
		name string
		gemm func(m, n, k int, a, bm, c []float32)
	}
	var runs []run
	if blas.Available {
		runs = append(runs, run{"blas=" + blas.Name(), func(m, n, k int, a, bm, c []float32) {
			blas.Sgemm(threads, nil, false, false, m, n, k, 1, a, k, bm, n, 0, c, n)
		}})
	}
	runs = append(runs,
		run{"backend=" + be.Name(), func(m, n, k int, a, bm, c []float32) {
			be.Gemm(false, false, m, n, k, 1, a, k, bm, n, 0, c, n)
		}},
		run{"purego=" + pure.Kernel(), func(m, n, k int, a, bm, c []float32) {
			pure.Sgemm(threads, false, false, m, n, k, 1, a, k, bm, n, 0, c, n)
		}})
	for _, s := range benchShapes {
		m, k, n := s[0], s[1], s[2]
		rng := rand.New(rand.NewPCG(5, 6))
		A, B, C := fill(rng, m*k), fill(rng, k*n), make([]float32, m*n) // [m,k] [k,n] [m,n]
		flops := 2 * float64(m) * float64(n) * float64(k)
		var ref float64 // BLAS GFLOP/s on this shape
		for i, r := range runs {
			b.Run(fmt.Sprintf("M%d_K%d_N%d/%s/threads%d", m, k, n, r.name, threads), func(b *testing.B) {
				r.gemm(m, n, k, A, B, C) // warm-up
				b.ResetTimer()
				for b.Loop() {
					r.gemm(m, n, k, A, B, C)
				}
				g := bench.ReportGFLOPs(b, flops)
				if blas.Available && i == 0 {
					ref = g
				} else if ref > 0 {
					b.ReportMetric(g/ref, "xblas")
				}
			})
		}
	}
}

// BenchmarkPeak reports bench.PeakGFLOPs of the default backend.
func BenchmarkPeak(b *testing.B) {
	be := New()
	var g float64
	for b.Loop() {
		g = bench.PeakGFLOPs(be)
	}
	b.ReportMetric(g, "GFLOP/s")
}

// blasBackend is a direct platform-BLAS backend for reference timings.
type blasBackend struct{ threads int }

func (p blasBackend) Name() string                        { return "blas" }
func (p blasBackend) Threads() int                        { return p.threads }
func (p blasBackend) SetThreads(int)                      {}
func (p blasBackend) Parallel(n int, fn func(lo, hi int)) { fn(0, n) }
func (p blasBackend) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	blas.Sgemm(p.threads, nil, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func fill(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 2*rng.Float32() - 1
	}
	return x
}
