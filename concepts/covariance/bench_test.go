package covariance

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// BenchmarkAccumulateSD15 measures the float64 rank-k accumulation at
// SD1.5's width (D = 768) with random encodings: one op adds a batch of 8
// captions × 77 tokens. It reports the projected time for the default
// corpus (captions.DefaultCount captions).
func BenchmarkAccumulateSD15(b *testing.B) {
	const d, batch, t = 768, 8, 77
	r := rand.New(rand.NewPCG(1, 1))
	enc := make([]float32, batch*t*d)
	for i := range enc {
		enc[i] = float32(r.NormFloat64())
	}
	a, err := NewAccumulator(d, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu := time.Now(), cpuSeconds()
	for b.Loop() {
		if err := a.Add(enc, batch); err != nil {
			b.Fatal(err)
		}
	}
	el, cpu := time.Since(start).Seconds(), cpuSeconds()-cpu
	flops := float64(b.N*batch*t) * d * (d + 1)
	b.ReportMetric(flops/el/1e9, "GFLOP/s")
	b.ReportMetric(el/float64(b.N*batch)*captions.DefaultCount, "s/corpus")
	if cpu > 0 { // on a shared machine: what it costs in CPU time
		b.ReportMetric(flops/cpu/1e9, "GFLOP/cpu-s")
		b.ReportMetric(cpu/float64(b.N*batch)*captions.DefaultCount, "cpu-s/corpus")
	}
}

// BenchmarkEncodeSD15 measures the CLIP ViT-L/14 text encoder (SD1.5's,
// random weights of the real shapes) on batches of 8 captions, and reports
// the projected encoding time of the default corpus. It builds a 490 MB
// model, so it is skipped with -short.
func BenchmarkEncodeSD15(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 490 MB text encoder")
	}
	cfg := clip.SD15()
	shapes, err := clip.Tensors(cfg)
	if err != nil {
		b.Fatal(err)
	}
	m := weights.Map{}
	r := rand.New(rand.NewPCG(2, 2))
	for name, shape := range shapes {
		n, fanIn := 1, 1
		for i, s := range shape {
			n *= s
			if i > 0 {
				fanIn *= s
			}
		}
		v := make([]float32, n)
		scale := float32(math.Sqrt(3 / float64(fanIn)))
		base := float32(0)
		if len(shape) == 1 {
			scale = 0.02
			if strings.HasSuffix(name, ".weight") {
				base = 1
			}
		}
		for i := range v {
			v[i] = base + scale*(2*r.Float32()-1)
		}
		m[name] = weights.Tensor{Data: v, Shape: shape}
	}
	model, err := clip.Load(ops.CPU(), m, cfg)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 8
	caps, _ := captions.Generate(batch, 1)
	ids := make([][]int, batch)
	for i, c := range caps {
		ids[i] = make([]int, 77)
		for j := range ids[i] {
			ids[i][j] = 49407 // EOS padding
		}
		ids[i][0] = 49406
		for j, ch := range []byte(c) { // any ids: the cost does not depend on them
			if j+1 < 76 {
				ids[i][j+1] = int(ch)
			}
		}
	}
	enc := CLIPEncoder{model}
	b.ResetTimer()
	start, cpu := time.Now(), cpuSeconds()
	for b.Loop() {
		if _, err := enc.Encode(context.Background(), ids); err != nil {
			b.Fatal(err)
		}
	}
	perCaption := time.Since(start).Seconds() / float64(b.N*batch)
	cpu = cpuSeconds() - cpu
	b.ReportMetric(1/perCaption, "captions/s")
	b.ReportMetric(perCaption*captions.DefaultCount, "s/corpus")
	if cpu > 0 {
		b.ReportMetric(cpu/float64(b.N*batch)*captions.DefaultCount, "cpu-s/corpus")
	}
}

// BenchmarkFactorSD15 measures Factor (eigenvalue extremes, Cholesky) and
// Inverse at D = 768 on a C from random encodings.
func BenchmarkFactorSD15(b *testing.B) {
	const d = 768
	r := rand.New(rand.NewPCG(3, 3))
	enc := make([]float32, 4*d*d)
	for i := range enc {
		enc[i] = float32(r.NormFloat64())
	}
	a, _ := NewAccumulator(d, 0)
	a.Add(enc, 40)
	c, _ := a.Matrix()
	b.ResetTimer()
	for b.Loop() {
		cv, err := Factor(c, d)
		if err != nil {
			b.Fatal(err)
		}
		_ = cv.Inverse()
	}
}
