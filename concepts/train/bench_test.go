package train

import (
	"context"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// BenchmarkSample times one training sample (text encoder, edited UNet
// forward and backward through both, batch 1) and one plain UNet forward
// of the same latents on the tiny model at 64 px, side by side, and
// reports their ratio (the target at SD1.5 shapes: ≤ 2.5).
func BenchmarkSample(b *testing.B) {
	p := tinyPipeline(b, blocks.HalfAsStored)
	job := tinyJob(b, p, 1)
	job.Settings.Size = 64
	ctx := context.Background()
	tr, err := newTrainer(ctx, job, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	gEmb := make([]float32, tr.d)
	gV := make([][]float32, len(tr.layers))
	for l := range gV {
		gV[l] = make([]float32, len(tr.st.OutV[l]))
	}
	ss := tr.draw(1, 0, 1)
	zt, ts, _, _, ids, _, err := tr.batch(ss, tr.classID)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := encodeText(p.CLIP, ids, 1, tensor.Tensor{})
	if err != nil {
		b.Fatal(err)
	}
	var fwd, sample time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := predictNoise(ctx, p.UNet, zt, ts, enc, nil); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := tr.pass(ctx, ss, 1, gEmb, gV); err != nil {
			b.Fatal(err)
		}
		fwd, sample = fwd+t1.Sub(t0), sample+time.Since(t1)
	}
	b.ReportMetric(float64(sample)/float64(fwd), "sample/forward")
	b.ReportMetric(sample.Seconds()/float64(b.N), "s/sample")
}
