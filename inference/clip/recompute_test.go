package clip

import (
	"math"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// With Options.Recompute the output is bit-identical to the plain
// graph's (the same operators on the same exactly converted weights), and
// the gradient into Options.Extra equal to summation order. On an engine
// that converts float16 weights, each is converted twice per forward and
// backward pass either way, but the recomputed pass converts into the
// pool's and the held buffers (the forward's, then its layer's
// recomputation, shared with the backward pass) where the plain graph
// allocates a fresh buffer on every read. On one that multiplies float16
// directly, every read (forward, recomputation, backward) takes the
// weight as stored and nothing is converted or held.
func TestRecompute(t *testing.T) {
	all, err := weights.ReadAll(weights.Safetensors(golden.Open(t, "tiny_clip_text.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	converting := ops.NewEngine(struct{ backend.Backend }{ops.CPU().B}) // hides backend.HalfGemmer
	for _, e := range []*ops.Engine{ops.CPU(), converting} {
		m, err := Load(e, all.ToHalf(), goldenConfig(t), blocks.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkRecompute(t, m, e.HalfGemm())
	}
}

func checkRecompute(t *testing.T, m *Model, halfGemm bool) {
	ids, _ := goldenIDs(t)
	d, row := m.Config.HiddenSize, slices.Clone(ids[:m.Config.MaxPositions])
	row[3] = m.Config.VocabSize
	extra := make([]float32, d)
	for i := range extra {
		extra[i] = float32(math.Sin(float64(i)))
	}
	pass := func(rc *blocks.Recompute) (out, grad []float32, conversions int) {
		s0 := m.pool.Stats()
		before := s0.Conversions() + s0.Direct
		p, err := tensor.NewParam(slices.Clone(extra), 1, d)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.ForwardWith(row, 1, Options{Extra: p, Recompute: rc})
		if err != nil {
			t.Fatal(err)
		}
		r := make([]float32, res.Out.Size())
		for i := range r {
			r[i] = float32(math.Cos(float64(i)))
		}
		tensor.AccGrad(res.Out.Node(), r)
		if err := ag.Backward(res.Out.Node()); err != nil {
			t.Fatal(err)
		}
		if rc != nil && rc.Err() != nil {
			t.Fatal(rc.Err())
		}
		after := m.pool.Stats()
		return slices.Clone(res.Out.Data()), slices.Clone(p.Grad()), after.Conversions() + after.Direct - before
	}
	out0, g0, n0 := pass(nil)
	out1, g1, n1 := pass(&blocks.Recompute{})
	if !slices.Equal(out0, out1) {
		t.Error("recomputation changes the output")
	}
	if e := relErr(g1, g0); e > 1e-6 { // spago's backward sums a node's gradients in any order
		t.Errorf("recomputation changes the gradient: relative error %.3g", e)
	}
	layers := 6 * len(m.layers) // q, k, v, out, fc1, fc2
	want0, want1, held := 2*layers, 2*layers, layers
	if halfGemm {
		want1, held = 3*layers, 0
	}
	if n0 != want0 || n1 != want1 {
		t.Errorf("HalfGemm %v: weight reads: plain graph %d, recomputed %d, want %d and %d", halfGemm, n0, n1, want0, want1)
	}
	if s := m.pool.Stats(); s.Held != held || s.InUse != 0 {
		t.Errorf("HalfGemm %v: pool: %+v, want %d held conversions and nothing in use", halfGemm, s, held)
	}
}
