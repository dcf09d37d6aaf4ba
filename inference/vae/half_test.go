package vae

import (
	"context"
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// halfTol is the relative L2 error allowed between the outputs of float16
// weights and the float32 reference (each weight moves by at most 2^-11
// relatively; the tiny models move by about 1e-3).
const halfTol = 1e-2

func relErr(got, want []float32) float64 {
	var d, n float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		n += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / max(n, 1e-300))
}

// A float16 checkpoint run with half storage decodes and encodes as the
// same rounded weights held as float32: the conversion on use is exact.
func TestHalfStorage(t *testing.T) {
	all, err := weights.ReadAll(weights.Safetensors(golden.Open(t, "tiny_vae.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	h := all.ToHalf()
	ctx := context.Background()
	run := func(opt blocks.LoadOptions) (dec, mean []float32, m *Model) {
		m, err := Load(ops.CPU(), h, goldenConfig(t), opt)
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.Decode(ctx, read(t, "z"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.Encode(ctx, read(t, "x"))
		if err != nil {
			t.Fatal(err)
		}
		return d.Data(), p.Mean.Data(), m
	}
	dec, mean, half := run(blocks.LoadOptions{})
	decRef, meanRef, ref := run(blocks.LoadOptions{Half: blocks.HalfNever})
	golden.Check(t, "decoded, half storage vs float32", dec, decRef, golden.Tolerance(t, ioFile, "decoded"))
	golden.Check(t, "mean, half storage vs float32", mean, meanRef, golden.Tolerance(t, ioFile, "mean"))
	t.Logf("half storage vs float32 of the same weights: max abs difference %.3g (decoded), %.3g (mean)",
		maxErr(dec, decRef), maxErr(mean, meanRef))
	f := golden.Open(t, ioFile)
	for name, got := range map[string][]float32{"decoded": dec, "mean": mean} {
		want, _ := golden.Float32(t, f, name)
		if e := relErr(got, want); e > halfTol {
			t.Errorf("%s of float16 weights: relative error %.3g vs the float32 reference, want <= %g", name, e, halfTol)
		} else {
			t.Logf("%s of float16 weights: relative error %.3g vs the float32 reference", name, e)
		}
	}
	if hb, fb := half.WeightBytes(), ref.WeightBytes(); hb >= fb || hb <= fb/2 {
		t.Errorf("WeightBytes: half %d, float32 %d", hb, fb)
	}
	if s := half.pool.Stats(); s.InUse != 0 || s.Allocated != 1 || s.Unpooled != 0 {
		t.Errorf("pool after decode and encode: %+v", s)
	}
}
