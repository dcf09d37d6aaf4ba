// Package bench measures GEMM throughput so benchmarks of larger kernels
// (conv, attention, a UNet step) can report their speed as a fraction of the
// GEMM peak measured in the same run, on the same machine and load.
//
// Typical use in a benchmark:
//
//	peak := bench.PeakGFLOPs(be)        // once per benchmark run
//	... timed loop ...
//	g := bench.ReportGFLOPs(b, flopsPerOp)
//	b.ReportMetric(g/peak, "xpeak")
package bench

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend"
)

// PeakSize is the m = n = k of the problem PeakGFLOPs times.
const PeakSize = 2048

// PeakGFLOPs is the GEMM throughput of b on a PeakSize³ problem, with all
// of b's threads: the best of a few runs after a warm-up.
func PeakGFLOPs(b backend.Backend) float64 {
	return GemmGFLOPs(b, PeakSize, PeakSize, PeakSize)
}

// GemmGFLOPs times C = A·B with A [m, k] and B [k, n] on b and returns the
// best GFLOP/s of several runs (at least 3, and more while under ~0.3 s).
func GemmGFLOPs(b backend.Backend, m, n, k int) float64 {
	rng := rand.New(rand.NewPCG(3, 4))
	a, bm, c := fill(rng, m*k), fill(rng, k*n), make([]float32, m*n) // [m,k] [k,n] [m,n]
	run := func() time.Duration {
		t0 := time.Now()
		b.Gemm(false, false, m, n, k, 1, a, k, bm, n, 0, c, n)
		return time.Since(t0)
	}
	run() // warm-up: page faults, packing buffers, BLAS threads
	best := run()
	var total time.Duration
	for i := 0; i < 3 || (total < 300*time.Millisecond && i < 50); i++ {
		d := run()
		total += d
		best = min(best, d)
	}
	return 2 * float64(m) * float64(n) * float64(k) / best.Seconds() / 1e9
}

// ReportGFLOPs reports b's throughput as a "GFLOP/s" metric, given the
// floating-point operations of one iteration, and returns it. Call it after
// the timed loop.
func ReportGFLOPs(b *testing.B, flopsPerOp float64) float64 {
	g := flopsPerOp * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(g, "GFLOP/s")
	return g
}

func fill(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 2*rng.Float32() - 1
	}
	return x
}
