package clip

import (
	"math"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
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

func loadWith(t *testing.T, src weights.Source, opt blocks.LoadOptions) *Model {
	t.Helper()
	m, err := Load(ops.CPU(), src, goldenConfig(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A float16 checkpoint run with half storage gives the outputs (and the
// gradients into Options.Extra) of the same rounded weights held as
// float32: the conversion on use is exact.
func TestHalfStorage(t *testing.T) {
	all, err := weights.ReadAll(weights.Safetensors(golden.Open(t, "tiny_clip_text.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	h := all.ToHalf()
	half := loadWith(t, h, blocks.LoadOptions{})
	ref := loadWith(t, h, blocks.LoadOptions{Half: blocks.HalfNever})
	ids, batch := goldenIDs(t)
	tol := golden.Tolerance(t, ioFile, "last_hidden_state")
	got, err := half.Forward(ids, batch)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Forward(ids, batch)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "half storage vs float32", got.Data(), want.Data(), tol)
	t.Logf("half storage vs float32 of the same weights: max abs difference %.3g", maxErr(got.Data(), want.Data()))
	gold, _ := golden.Float32(t, golden.Open(t, ioFile), "last_hidden_state")
	if e := relErr(got.Data(), gold); e > halfTol {
		t.Errorf("float16 weights: relative error %.3g vs the float32 reference, want <= %g", e, halfTol)
	} else {
		t.Logf("float16 weights: relative error %.3g vs the float32 reference", e)
	}
	if hb, fb := half.WeightBytes(), ref.WeightBytes(); hb >= fb || hb <= fb/2 {
		t.Errorf("WeightBytes: half %d, float32 %d", hb, fb)
	}
	// Where the backend multiplies float16 directly the forward converts
	// nothing; otherwise one pooled buffer serves every layer.
	if s := half.pool.Stats(); s.InUse != 0 || s.Unpooled != 0 ||
		half.e.HalfGemm() && (s.Allocated != 0 || s.Direct == 0) || !half.e.HalfGemm() && s.Allocated != 1 {
		t.Errorf("pool after one forward (HalfGemm %v): %+v", half.e.HalfGemm(), s)
	}

	// Gradients into an extra embedding row (any values: here the first
	// output row) through the half layers.
	d, row := half.Config.HiddenSize, ids[:half.Config.MaxPositions]
	row[3] = half.Config.VocabSize
	grad := func(m *Model) []float32 {
		p, err := tensor.NewParam(slices.Clone(gold[:d]), 1, d)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.ForwardWith(row, 1, Options{Extra: p})
		out := res.Out
		if err != nil {
			t.Fatal(err)
		}
		r := make([]float32, out.Size())
		for i := range r {
			r[i] = float32(math.Cos(float64(i)))
		}
		tensor.AccGrad(out.Node(), r)
		if err := ag.Backward(out.Node()); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(p.Grad())
	}
	golden.Check(t, "gradient, half storage vs float32", grad(half), grad(ref), golden.Tol{Atol: 1e-5, Rtol: 1e-4})
	// Independent operators' backward may run at once, each with a
	// borrowed buffer: a few buffers, reused for every conversion.
	if s := half.pool.Stats(); s.InUse != 0 || s.Unpooled != 0 || s.Allocated > 16 || s.Pooled < 2*s.Allocated {
		t.Errorf("pool after a gradient forward: %+v, want every conversion in a few reused pool buffers, nothing in use", s)
	}
}
