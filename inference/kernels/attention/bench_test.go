package attention

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
)

// sdSelf is SD1.5's largest attention: self-attention over the 64×64
// latent tokens of a 512×512 image, 8 heads of 40.
var sdSelf = Problem{B: 1, Tq: 4096, Tk: 4096, Heads: 8, Dh: 40, Dv: 40, Scale: float32(1 / math.Sqrt(40))}

func benchInputs(p Problem) (q, k, v, out, lse, dout []float32) {
	rng := rand.New(rand.NewPCG(1, 2))
	nq, nk, nv, no := p.lens()
	return randn(rng, nq, 1), randn(rng, nk, 1), randn(rng, nv, 1),
		make([]float32, no), make([]float32, p.LSELen()), randn(rng, no, 1)
}

// timeLoop runs step in b.Loop and reports the mean GFLOP/s, the best
// iteration's ("best-GFLOP/s") and the best's ratio to peak ("xpeak"):
// bench.PeakGFLOPs is a best-of-runs figure too, so on a shared machine the
// two best-case figures compare like with like.
func timeLoop(b *testing.B, flops, peak float64, step func()) {
	best := time.Duration(math.MaxInt64)
	for b.Loop() {
		t0 := time.Now()
		step()
		best = min(best, time.Since(t0))
	}
	bench.ReportGFLOPs(b, flops)
	g := flops / best.Seconds() / 1e9
	b.ReportMetric(g, "best-GFLOP/s")
	b.ReportMetric(g/peak, "xpeak")
}

// BenchmarkForward times Forward (with the log-sum-exp saved) on sdSelf;
// flops are 4·Tq·Tk·Dh·H.
func BenchmarkForward(b *testing.B) {
	be := cpu.New()
	peak := bench.PeakGFLOPs(be)
	b.Logf("backend %s, %d threads, GEMM peak %.1f GFLOP/s", be.Name(), be.Threads(), peak)
	p := sdSelf
	q, k, v, out, lse, _ := benchInputs(p)
	b.ReportAllocs()
	timeLoop(b, p.Flops(), peak, func() {
		if err := Forward(be, nil, p, q, k, v, out, lse); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkForwardBackward times Forward then Backward (all three
// gradients) on sdSelf, counting 3.5 times the forward flops (a backward is
// 2.5 forwards). "MiB" is what one such step allocates, read from
// runtime.MemStats.TotalAlloc: the kernel's whole working memory (packed
// operands and per-worker tiles; inputs, outputs, lse and gradients are the
// caller's). TotalAlloc counts every allocation even if freed, so it bounds
// the peak from above.
func BenchmarkForwardBackward(b *testing.B) {
	be := cpu.New()
	peak := bench.PeakGFLOPs(be)
	p := sdSelf
	q, k, v, out, lse, dout := benchInputs(p)
	dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	step := func() {
		if err := Forward(be, nil, p, q, k, v, out, lse); err != nil {
			b.Fatal(err)
		}
		if err := Backward(be, nil, p, q, k, v, out, lse, dout, dq, dk, dv); err != nil {
			b.Fatal(err)
		}
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	step()
	runtime.ReadMemStats(&m1)
	timeLoop(b, 3.5*p.Flops(), peak, step)
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/(1<<20), "MiB") // after b.Loop, which resets metrics
}

// BenchmarkSmall times Forward then Backward, on one thread, at the
// attention shapes of the default model's UNet as one data-parallel
// replica trains it (16 images, 4 heads): self-attention over the 64, 16
// and 4 tokens of its 8x8, 4x4 and 2x2 levels, and cross-attention to 77
// text tokens, where packing and padding weigh most. Buffers are nil, so
// each call allocates its working memory too.
func BenchmarkSmall(b *testing.B) {
	for _, c := range []struct {
		name   string
		tq, tk int
		d      int
	}{{"self64", 64, 64, 12}, {"self16", 16, 16, 24}, {"self4", 4, 4, 36}, {"cross64", 64, 77, 12}, {"cross16", 16, 77, 24}, {"cross4", 4, 77, 36}} {
		b.Run(c.name, func(b *testing.B) {
			be := cpu.NewGo()
			be.SetThreads(1)
			p := Problem{B: 16, Tq: c.tq, Tk: c.tk, Heads: 4, Dh: c.d, Dv: c.d, Scale: float32(1 / math.Sqrt(float64(c.d)))}
			q, k, v, out, lse, dout := benchInputs(p)
			dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
			for b.Loop() {
				if err := Forward(be, nil, p, q, k, v, out, lse); err != nil {
					b.Fatal(err)
				}
				if err := Backward(be, nil, p, q, k, v, out, lse, dout, dq, dk, dv); err != nil {
					b.Fatal(err)
				}
			}
			bench.ReportGFLOPs(b, 3.5*p.Flops())
		})
	}
}

// BenchmarkPanel times each kernel set's product kernel alone, on one
// thread, on the shapes the tiles give it for sdSelf: the forward's
// S = Q Kᵀ (k = Dh, 128 columns) and O += P V (k = 128 keys, Dv = 40
// columns), and Backward's dV += Pᵀ dO (A read transposed, k = 48
// queries, 40 columns). "best-GFLOP/s" is the best of 64-call batches.
func BenchmarkPanel(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, kn := range available() {
		for _, c := range []struct {
			name              string
			k, rs, ps, ldb, n int
			acc               bool
		}{
			{"QKt", 40, 40, 1, fwdK, fwdK, false},
			{"PV", fwdK, fwdK, 1, 40, 40, true},
			{"PtdO", bwdQ, 1, bwdK, 40, 40, true},
		} {
			b.Run(kn.name+"/"+c.name, func(b *testing.B) {
				m := kn.mr
				a := randn(rng, (m-1)*c.rs+(c.k-1)*c.ps+1, 1)
				bm := randn(rng, (c.k-1)*c.ldb+c.n, 1)
				cm := make([]float32, m*c.n)
				const calls = 64
				flops := 2 * float64(m*c.n*c.k) * calls
				best := time.Duration(math.MaxInt64)
				for b.Loop() {
					t0 := time.Now()
					for range calls {
						kn.panel(c.k, a, c.rs, c.ps, bm, c.ldb, cm, c.n, c.n, c.acc)
					}
					best = min(best, time.Since(t0))
				}
				b.ReportMetric(flops/best.Seconds()/1e9, "best-GFLOP/s")
			})
		}
	}
}
