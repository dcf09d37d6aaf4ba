package pipeline_test

import (
	"context"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/pipeline/perf"
)

// BenchmarkSD15 times the SD1.5 stages at 256x256 on random weights of
// SD1.5's shapes (written to a temporary folder as float16, ~2.1 GB, then
// loaded: 2.1 to 4.3 GB of memory as the loaders hold them): the text
// encoder, one UNet forward at batch 1 and at batch 2 (a CFG sampling
// step), and the VAE decoder. UNet speed is reported in GFLOP/s and as a
// fraction of the GEMM peak ("xpeak"). `perfusion bench` measures the same
// at 512x512.
func BenchmarkSD15(b *testing.B) {
	if testing.Short() {
		b.Skip("writes and loads a 2 GB random SD1.5 checkpoint")
	}
	const size = 256
	ctx := context.Background()
	m, err := perf.Prepare(ctx, perf.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	peak := m.PeakGFLOPs()
	b.Logf("GEMM peak %.1f GFLOP/s on %s", peak, m.P.Engine.B.Name())
	run := func(name string, flops float64, fn func(context.Context) error) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := fn(ctx); err != nil {
					b.Fatal(err)
				}
			}
			if flops > 0 {
				g := bench.ReportGFLOPs(b, flops)
				b.ReportMetric(g/peak, "xpeak")
			}
		})
	}
	run("text", 0, m.EncodeText)
	run("unet-256-b1", m.UNetFLOPs(size, 1).Total(), func(ctx context.Context) error { return m.UNet(ctx, size, 1) })
	run("unet-256-cfg", m.UNetFLOPs(size, 2).Total(), func(ctx context.Context) error { return m.UNet(ctx, size, 2) })
	run("vae-256", 0, func(ctx context.Context) error { return m.Decode(ctx, size) })
}
