package clip

import (
	"math"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// With Options.Recompute the output is bit-identical to the plain
// graph's (the same operators on the same exactly converted weights), and
// the gradient into Options.Extra equal to summation order. Each float16 weight is converted twice per
// forward and backward pass either way, but the recomputed pass converts
// into the pool's and the held buffers (the forward's, then its layer's
// recomputation, shared with the backward pass) where the plain graph
// allocates a fresh buffer on every read.
func TestRecompute(t *testing.T) {
	all, err := weights.ReadAll(weights.Safetensors(golden.Open(t, "tiny_clip_text.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	m := loadWith(t, all.ToHalf(), blocks.LoadOptions{})
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
	if n0 != 2*layers || n1 != 2*layers {
		t.Errorf("conversions: plain graph %d, recomputed %d, want %d each", n0, n1, 2*layers)
	}
	if s := m.pool.Stats(); s.Held != layers || s.InUse != 0 {
		t.Errorf("pool: %+v, want %d held conversions and nothing in use", s, layers)
	}
}
