package unet

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// recomputeRun is one forward and backward pass of the golden inputs with
// the context and an editor's bias on one attn2 V as parameters.
type recomputeRun struct {
	eps, gCtx, gBias []float32
	traced           []string
}

func runRecompute(t *testing.T, m *Model, rc *blocks.Recompute, bias []float32, r []float32) recomputeRun {
	t.Helper()
	x, ts, cond := inputs(t, golden.Open(t, ioFile))
	c, err := tensor.NewParam(slices.Clone(cond.Data()), cond.Shape()...)
	if err != nil {
		t.Fatal(err)
	}
	layer := m.CrossAttentions()[1]
	p, err := tensor.NewParam(slices.Clone(bias), len(bias))
	if err != nil {
		t.Fatal(err)
	}
	var out recomputeRun
	trace := func(name string, _ tensor.Tensor) { out.traced = append(out.traced, name) }
	call := Call{Editor: biasEditor{e: ops.CPU(), layer: layer.Name, bias: p}, Trace: trace, Recompute: rc}
	eps, err := m.Forward(context.Background(), x, ts, c, call)
	if err != nil {
		t.Fatal(err)
	}
	out.eps = slices.Clone(eps.Data())
	if r == nil {
		return out
	}
	tensor.AccGrad(eps.Node(), slices.Clone(r))
	if err := ag.Backward(eps.Node()); err != nil {
		t.Fatal(err)
	}
	if rc != nil && rc.Err() != nil {
		t.Fatal(rc.Err())
	}
	out.gCtx, out.gBias = slices.Clone(c.Grad()), slices.Clone(p.Grad())
	if out.gCtx == nil || out.gBias == nil {
		t.Fatal("a gradient is missing")
	}
	return out
}

// With Call.Recompute the UNet's output, its trace and the gradients of
// the context and of an editor's parameter equal those of the plain graph
// to float rounding, for float32 and float16-held weights; the
// checkpointed gradient of the parameter also matches central finite
// differences of sum(eps * r).
func TestRecomputeGradients(t *testing.T) {
	if testing.Short() {
		t.Skip("backward through the tiny UNet")
	}
	for _, half := range []bool{false, true} {
		name := "float32"
		src := tinyMap(t)
		if half {
			name, src = "float16", src.ToHalf()
		}
		t.Run(name, func(t *testing.T) {
			m := loadWith(t, src, blocks.LoadOptions{})
			inner := m.CrossAttentions()[1].ToV.Dim(0)
			bias := make([]float32, inner)
			for i := range bias {
				bias[i] = 0.1 * float32(i%5-2)
			}
			probe := runRecompute(t, m, nil, bias, nil)
			r := make([]float32, len(probe.eps))
			for i := range r {
				r[i] = float32(math.Sin(float64(i)))
			}
			plain := runRecompute(t, m, nil, bias, r)
			rc := &blocks.Recompute{}
			ck := runRecompute(t, m, rc, bias, r)
			if d := relErr(ck.eps, plain.eps); d > 1e-6 {
				t.Errorf("eps differs by %g (relative L2)", d)
			}
			if !slices.Equal(ck.traced, plain.traced) {
				t.Errorf("traced %d outputs, plain %d", len(ck.traced), len(plain.traced))
			}
			if d := relErr(ck.gCtx, plain.gCtx); d > 1e-5 {
				t.Errorf("context gradient differs by %g (relative L2)", d)
			}
			if d := relErr(ck.gBias, plain.gBias); d > 1e-5 {
				t.Errorf("parameter gradient differs by %g (relative L2)", d)
			}
			loss := func() float64 {
				eps := runRecompute(t, m, nil, bias, nil).eps
				s := 0.0
				for i, v := range eps {
					s += float64(v) * float64(r[i])
				}
				return s
			}
			const h = 1e-2
			for _, i := range []int{0, inner - 1} {
				old := bias[i]
				bias[i] = old + h
				up := loss()
				bias[i] = old - h
				down := loss()
				bias[i] = old
				fd := (up - down) / (2 * h)
				if math.Abs(fd-float64(ck.gBias[i])) > 2e-2*(1+math.Abs(fd)) {
					t.Errorf("grad[%d] = %g, finite difference %g", i, ck.gBias[i], fd)
				}
			}
		})
	}
}

// With Call.Recompute and float16 weights, a forward and backward pass
// converts each weight at most twice (once in the forward pass, once for
// its block's recomputation and backward pass together, see
// blocks.Recompute.CheckpointOn): at most twice a plain forward's
// conversions, where converting for the recomputation and again for the
// backward pass took three times.
func TestRecomputeConvertsOncePerPass(t *testing.T) {
	if testing.Short() {
		t.Skip("backward through the tiny UNet")
	}
	m := loadWith(t, tinyMap(t).ToHalf(), blocks.LoadOptions{})
	s0 := m.pool.Stats()
	epsOf(t, m)
	s1 := m.pool.Stats()
	n := s1.Conversions() + s1.Direct - s0.Conversions() - s0.Direct // one per weight use
	bias := make([]float32, m.CrossAttentions()[1].ToV.Dim(0))
	r := make([]float32, len(epsOf(t, m)))
	for i := range r {
		r[i] = float32(math.Cos(float64(i)))
	}
	s2 := m.pool.Stats()
	runRecompute(t, m, &blocks.Recompute{}, bias, r)
	s3 := m.pool.Stats()
	got := s3.Conversions() - s2.Conversions()
	t.Logf("a plain forward converts %d weights, a recomputed forward and backward pass %d (%d held)", n, got, s3.Held-s2.Held)
	if s3.Held == s2.Held {
		t.Error("no weight was held for a recomputation")
	}
	if got > 2*n {
		t.Errorf("a recomputed pass converted %d weights, want at most 2 × %d", got, n)
	}
	if s3.InUse != 0 {
		t.Errorf("%d pooled buffers not returned", s3.InUse)
	}
}
