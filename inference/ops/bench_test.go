package ops

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Benchmarks at SD1.5 shapes (64x64 latents, 320 channels). The GEMM-bound
// ones also report their ratio to the GEMM peak measured in the same run
// ("xpeak"). bench.PeakGFLOPs is the best of several GEMM runs, so xpeak
// compares it with the best iteration ("bestGFLOP/s"); the peak is the
// mean of one measurement just before and one just after the timed loop,
// so that a shared machine's load moves both numbers together.

func benchEngine(b *testing.B) *Engine {
	e := NewEngine(cpu.New())
	b.Logf("backend %s, %d threads", e.B.Name(), e.B.Threads())
	return e
}

// timed runs op in a b.Loop and returns its fastest iteration.
func timed(b *testing.B, op func() error) time.Duration {
	best := time.Duration(math.MaxInt64)
	for b.Loop() {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		best = min(best, time.Since(t0))
	}
	return best
}

// reportPeak reports the mean and best GFLOP/s of the timed loop, the GEMM
// peak (mean of before, measured by the caller, and now) and best/peak.
func reportPeak(b *testing.B, e *Engine, before float64, best time.Duration, flopsPerOp float64) {
	bench.ReportGFLOPs(b, flopsPerOp)
	g := flopsPerOp / best.Seconds() / 1e9
	peak := (before + bench.PeakGFLOPs(e.B)) / 2
	b.ReportMetric(g, "bestGFLOP/s")
	b.ReportMetric(peak, "peakGFLOP/s")
	b.ReportMetric(g/peak, "xpeak")
}

func BenchmarkConv2D3x3(b *testing.B) {
	e := benchEngine(b)
	r := newRand(1)
	x, w, bias := frozen(r, 1, 320, 64, 64), frozen(r, 320, 320, 3, 3), frozen(r, 320)
	peak := bench.PeakGFLOPs(e.B)
	best := timed(b, func() error {
		_, err := e.Conv2D(x, w, bias, Conv2DParams{Pad: Pad(1)})
		return err
	})
	reportPeak(b, e, peak, best, 2*320*320*9*64*64)
}

// BenchmarkConv2D3x3Paths runs the row and Winograd paths side by side at
// the UNet's 64x64 level and the VAE decoder's shapes; GFLOP/s count the
// direct convolution's 2*O*C*9*Ho*Wo, so the Winograd path's "xpeak" can
// exceed 1.
func BenchmarkConv2D3x3Paths(b *testing.B) {
	for _, sh := range []struct {
		name    string
		c, side int
	}{{"unet320x64", 320, 64}, {"vae512x64", 512, 64}, {"vae256x128", 256, 128}, {"vae128x256", 128, 256}} {
		for _, path := range []struct {
			name string
			p    convPath
		}{{"rows", pathRows}, {"winograd", pathWinograd}} {
			b.Run(sh.name+"/"+path.name, func(b *testing.B) {
				e := benchEngine(b)
				r := newRand(1)
				x, w, bias := frozen(r, 1, sh.c, sh.side, sh.side), frozen(r, sh.c, sh.c, 3, 3), frozen(r, sh.c)
				peak := bench.PeakGFLOPs(e.B)
				best := timed(b, func() error {
					_, err := conv2dPath(e, x, w, bias, Conv2DParams{Pad: Pad(1)}, path.p)
					return err
				})
				reportPeak(b, e, peak, best, 2*float64(sh.c*sh.c*9*sh.side*sh.side))
			})
		}
	}
}

// BenchmarkConv2D3x3Small runs the Winograd path on one thread at the
// small shapes of the default model (32 and 64 channels, 32x32 and 64x64
// maps), where the tile transforms and the pure-Go GEMM's packing weigh
// most: forward ("fwd") and forward + input gradient with a frozen weight
// ("bwd"), with the pure-Go GEMM ("go") and the default backend
// ("default": the platform BLAS where the build links one).
func BenchmarkConv2D3x3Small(b *testing.B) {
	for _, be := range []struct {
		name string
		new  func() *cpu.CPU
	}{{"go", cpu.NewGo}, {"default", cpu.New}} {
		for _, sh := range []struct{ c, side int }{{32, 32}, {64, 32}, {32, 64}, {64, 64}} {
			for _, bwd := range []bool{false, true} {
				name := fmt.Sprintf("%s/c%d/%dx%d/fwd", be.name, sh.c, sh.side, sh.side)
				if bwd {
					name = name[:len(name)-3] + "bwd"
				}
				b.Run(name, func(b *testing.B) {
					e := NewEngine(be.new())
					e.B.SetThreads(1)
					r := newRand(3)
					x := param(b, r, 1, sh.c, sh.side, sh.side)
					w, bias := frozen(r, sh.c, sh.c, 3, 3), frozen(r, sh.c)
					dy := randn(r, sh.c*sh.side*sh.side)
					for b.Loop() {
						y, err := conv2dPath(e, x, w, bias, Conv2DParams{Pad: Pad(1)}, pathWinograd)
						if err != nil {
							b.Fatal(err)
						}
						if bwd {
							tensor.AccGrad(y.Node(), dy)
							backward(b, y)
							x.ZeroGrad()
						}
					}
					flops := 2 * float64(sh.c*sh.c*9*sh.side*sh.side)
					if bwd {
						flops *= 2
					}
					bench.ReportGFLOPs(b, flops)
				})
			}
		}
	}
}

// BenchmarkConv2D3x3Batched is a training step's convolution at the
// default model's UNet levels (48, 96 and 144 channels on 8x8, 4x4 and 2x2
// latents), as one data-parallel replica runs it: 16 images, one thread,
// the pure-Go GEMM, the batched path; forward and the gradients of the
// input and the weight.
func BenchmarkConv2D3x3Batched(b *testing.B) {
	for _, sh := range []struct{ c, side int }{{48, 8}, {96, 4}, {144, 2}} {
		b.Run(fmt.Sprintf("c%d/%dx%d", sh.c, sh.side, sh.side), func(b *testing.B) {
			e := NewEngine(cpu.NewGo())
			e.B.SetThreads(1)
			r := newRand(4)
			const batch = 16
			x := param(b, r, batch, sh.c, sh.side, sh.side)
			w, bias := param(b, r, sh.c, sh.c, 3, 3), param(b, r, sh.c)
			dy := randn(r, batch*sh.c*sh.side*sh.side)
			for b.Loop() {
				y, err := e.Conv2D(x, w, bias, Conv2DParams{Pad: Pad(1)})
				if err != nil {
					b.Fatal(err)
				}
				tensor.AccGrad(y.Node(), dy)
				backward(b, y)
				x.ZeroGrad()
				w.ZeroGrad()
				bias.ZeroGrad()
			}
			bench.ReportGFLOPs(b, 3*2*float64(batch*sh.c*sh.c*9*sh.side*sh.side))
		})
	}
}

// BenchmarkConv2D3x3Backward is forward + backward with a frozen weight, as
// when Perfusion trains through the UNet: the input gradient only.
func BenchmarkConv2D3x3Backward(b *testing.B) {
	e := benchEngine(b)
	r := newRand(2)
	x := param(b, r, 1, 320, 64, 64)
	w, bias := frozen(r, 320, 320, 3, 3), frozen(r, 320)
	dy := randn(r, 320*64*64)
	peak := bench.PeakGFLOPs(e.B)
	best := timed(b, func() error {
		y, err := e.Conv2D(x, w, bias, Conv2DParams{Pad: Pad(1)})
		if err != nil {
			return err
		}
		tensor.AccGrad(y.Node(), dy)
		backward(b, y)
		x.ZeroGrad()
		return nil
	})
	reportPeak(b, e, peak, best, 2*2*320*320*9*64*64)
}

func BenchmarkConv2D1x1(b *testing.B) {
	e := benchEngine(b)
	r := newRand(3)
	x, w, bias := frozen(r, 1, 320, 64, 64), frozen(r, 320, 320, 1, 1), frozen(r, 320)
	peak := bench.PeakGFLOPs(e.B)
	best := timed(b, func() error {
		_, err := e.Conv2D(x, w, bias, Conv2DParams{})
		return err
	})
	reportPeak(b, e, peak, best, 2*320*320*64*64)
}

// BenchmarkConv2DDown is the UNet's stride-2 downsample at 64x64 (im2col).
func BenchmarkConv2DDown(b *testing.B) {
	e := benchEngine(b)
	r := newRand(4)
	x, w, bias := frozen(r, 1, 320, 64, 64), frozen(r, 320, 320, 3, 3), frozen(r, 320)
	peak := bench.PeakGFLOPs(e.B)
	best := timed(b, func() error {
		_, err := e.Conv2D(x, w, bias, Conv2DParams{Stride: 2, Pad: Pad(1)})
		return err
	})
	reportPeak(b, e, peak, best, 2*320*320*9*32*32)
}

func BenchmarkLinear(b *testing.B) {
	e := benchEngine(b)
	r := newRand(5)
	x, w, bias := frozen(r, 4096, 320), frozen(r, 320, 320), frozen(r, 320)
	peak := bench.PeakGFLOPs(e.B)
	best := timed(b, func() error {
		_, err := e.Linear(x, w, bias)
		return err
	})
	reportPeak(b, e, peak, best, 2*4096*320*320)
}

// BenchmarkGroupNorm reports bytes read + written as MB/s.
func BenchmarkGroupNorm(b *testing.B) {
	e := benchEngine(b)
	r := newRand(6)
	x, gamma, beta := frozen(r, 1, 320, 64, 64), frozen(r, 320), frozen(r, 320)
	b.SetBytes(2 * 4 * int64(x.Size()))
	for b.Loop() {
		if _, err := e.GroupNorm(x, 32, gamma, beta, 1e-5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGroupNormBackward(b *testing.B) {
	e := benchEngine(b)
	r := newRand(7)
	x := param(b, r, 1, 320, 64, 64)
	gamma, beta := frozen(r, 320), frozen(r, 320)
	dy := randn(r, x.Size())
	b.SetBytes(5 * 4 * int64(x.Size())) // forward: x, y; backward: x, dy, dx
	for b.Loop() {
		y, err := e.GroupNorm(x, 32, gamma, beta, 1e-5)
		if err != nil {
			b.Fatal(err)
		}
		tensor.AccGrad(y.Node(), dy)
		backward(b, y)
		x.ZeroGrad()
	}
}

func BenchmarkLayerNorm(b *testing.B) {
	e := benchEngine(b)
	r := newRand(8)
	x, gamma, beta := frozen(r, 4096, 320), frozen(r, 320), frozen(r, 320)
	b.SetBytes(2 * 4 * int64(x.Size()))
	for b.Loop() {
		if _, err := e.LayerNorm(x, gamma, beta, 1e-5); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGEGLU is the feed-forward gate at 64x64: [4096, 2560] -> [4096, 1280].
func BenchmarkGEGLU(b *testing.B) {
	e := benchEngine(b)
	x := frozen(newRand(9), 4096, 2560)
	b.SetBytes(4 * int64(x.Size()) * 3 / 2)
	for b.Loop() {
		if _, err := e.GEGLU(x); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSiLU(b *testing.B) {
	e := benchEngine(b)
	x := frozen(newRand(10), 1, 320, 64, 64)
	b.SetBytes(2 * 4 * int64(x.Size()))
	for b.Loop() {
		if _, err := e.SiLU(x); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToTokens(b *testing.B) {
	e := benchEngine(b)
	x := frozen(newRand(11), 2, 320, 64, 64)
	b.SetBytes(2 * 4 * int64(x.Size()))
	for b.Loop() {
		if _, err := e.ToTokens(x); err != nil {
			b.Fatal(err)
		}
	}
}
