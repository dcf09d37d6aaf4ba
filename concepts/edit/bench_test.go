package edit

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend/bench"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/pipeline/perf"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// BenchmarkEditSD15 measures the cost of the edit in one sampling step at
// SD1.5's shapes (16 cross-attention layers, D 768, T 77, the CFG batch
// B = 2), one concept: per step, the 32 edited K/V projections against the
// 32 plain ones; per generation, the fold (e′ and the gate). It reports
// them in ms and the extra time per step as a share of a 512×512 UNet step
// (batch 2), whose time is bounded below by its FLOPs at the GEMM peak
// measured in the same run: the share reported is an upper bound.
//
//	go test -run X -bench EditSD15 -benchtime 20x ./concepts/edit/
func BenchmarkEditSD15(b *testing.B) {
	cfg := unet.SD15()
	shapes, err := unet.Tensors(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var layers []string
	for name := range shapes {
		if l, ok := strings.CutSuffix(strings.TrimPrefix(name, unet.Prefix), ".to_k.weight"); ok && strings.HasSuffix(l, "attn2") {
			layers = append(layers, l)
		}
	}
	sort.Strings(layers)
	if len(layers) != 16 {
		b.Fatalf("SD1.5 has 16 cross-attention layers, found %d", len(layers))
	}
	const batch, tokens = 2, 77
	d := cfg.ContextDim
	r := newRand(1)
	e := ops.CPU()
	c := &Concept{Name: "bench", Input: randn(r, d, 1), Beta: InferenceBeta, Tau: InferenceTau, Layers: map[string]Targets{}}
	var wk, wv []tensor.Tensor
	for _, l := range layers {
		o := shapes[unet.Prefix+l+".to_k.weight"][0]
		wk = append(wk, tensor.MustNew(randn(r, o*d, 0.03), o, d))
		wv = append(wv, tensor.MustNew(randn(r, o*d, 0.03), o, d))
		c.Layers[l] = Targets{K: tensor.MustNew(randn(r, o, 1), o), V: tensor.MustNew(randn(r, o, 1), o)}
	}
	ctx := tensor.MustNew(randn(r, batch*tokens*d, 1), batch, tokens, d)
	m := identityMetric(d)

	var plain, edited, fold time.Duration
	for b.Loop() {
		start := time.Now()
		for i := range layers {
			if _, err := e.Linear(ctx, wk[i], tensor.Tensor{}); err != nil {
				b.Fatal(err)
			}
			if _, err := e.Linear(ctx, wv[i], tensor.Tensor{}); err != nil {
				b.Fatal(err)
			}
		}
		plain += time.Since(start)
		start = time.Now()
		ed, err := NewEditor(e, ctx, []*Concept{c}, m, Options{})
		if err != nil {
			b.Fatal(err)
		}
		fold += time.Since(start)
		start = time.Now()
		for i, l := range layers {
			if _, err := ed.Project(l, unet.Key, ctx, wk[i]); err != nil {
				b.Fatal(err)
			}
			if _, err := ed.Project(l, unet.Value, ctx, wv[i]); err != nil {
				b.Fatal(err)
			}
		}
		edited += time.Since(start)
	}
	n := float64(b.N)
	ms := func(t time.Duration) float64 { return t.Seconds() * 1e3 / n }
	b.ReportMetric(ms(plain), "plain_kv_ms")
	b.ReportMetric(ms(edited), "edit_kv_ms")
	b.ReportMetric(ms(fold), "fold_ms/generation")
	b.StopTimer()
	step := perf.UNetFLOPs(cfg, batch, 64, 64, tokens).Total() / (bench.PeakGFLOPs(e.B) * 1e9) // seconds, a lower bound
	b.ReportMetric(100*(ms(edited)-ms(plain))/1e3/step, "extra_%_of_step512")
	b.ReportMetric(100*ms(edited)/1e3/step, "edit_kv_%_of_step512")
}

// identityMetric is C⁻¹ = I.
func identityMetric(d int) Metric {
	inv := make([]float64, d*d)
	for i := range d {
		inv[i*d+i] = 1
	}
	return &DenseMetric{inv: inv, d: d}
}
