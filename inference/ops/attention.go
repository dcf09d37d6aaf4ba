package ops

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/kernels/attention"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Attention is multi-head scaled dot-product attention (Vaswani et al.
// 2017), self or cross: per batch b and head h,
//
//	out = softmax(scale · q kᵀ) v
//
// with q [B, Tq, H*Dh], k [B, Tk, H*Dh], v [B, Tk, H*Dv] -> [B, Tq, H*Dv],
// heads laid out as consecutive channel groups (PyTorch's
// "b t (h d) -> b h t d"). scale is usually Dh^-0.5. With causal, query i
// sees keys j <= i only (CLIP's text encoder), which needs Tq == Tk.
//
// It runs the tiled online-softmax kernel of package
// inference/kernels/attention: no full score matrix is ever held, and only
// the per-row log-sum-exp is kept for the backward pass.
func (e *Engine) Attention(q, k, v tensor.Tensor, heads int, scale float32, causal bool) (tensor.Tensor, error) {
	if err := missing("attention", q, k, v); err != nil {
		return tensor.Tensor{}, err
	}
	p, err := attentionProblem(q, k, v, heads, scale, causal)
	if err != nil {
		return tensor.Tensor{}, err
	}
	f := &attentionFn{e: e, q: q, k: k, v: v, p: p}
	return e.run(f, []int{p.B, p.Tq, p.Heads * p.Dv}, AnyGrad(q, k, v))
}

// attentionProblem checks the shapes and returns the kernel's problem.
func attentionProblem(q, k, v tensor.Tensor, heads int, scale float32, causal bool) (attention.Problem, error) {
	bad := func(why string, args ...any) error {
		return fmt.Errorf("ops: attention: q %v, k %v, v %v: %s", q.Shape(), k.Shape(), v.Shape(), fmt.Sprintf(why, args...))
	}
	if q.Rank() != 3 || k.Rank() != 3 || v.Rank() != 3 {
		return attention.Problem{}, bad("want [B, T, C] each")
	}
	for _, t := range []tensor.Tensor{q, k, v} {
		for _, d := range t.Shape() {
			if d < 1 {
				return attention.Problem{}, bad("empty dimension")
			}
		}
	}
	switch B, Tq, Tk, C := q.Dim(0), q.Dim(1), k.Dim(1), q.Dim(2); {
	case heads < 1:
		return attention.Problem{}, bad("heads=%d", heads)
	case k.Dim(0) != B || v.Dim(0) != B:
		return attention.Problem{}, bad("batch sizes differ")
	case v.Dim(1) != Tk:
		return attention.Problem{}, bad("k and v token counts differ")
	case k.Dim(2) != C:
		return attention.Problem{}, bad("q and k channels differ")
	case C%heads != 0 || v.Dim(2)%heads != 0:
		return attention.Problem{}, bad("channels not divisible by heads=%d", heads)
	case causal && Tq != Tk:
		return attention.Problem{}, bad("causal needs as many queries as keys")
	case !(scale > 0) || math.IsInf(float64(scale), 1):
		return attention.Problem{}, bad("scale %v must be positive and finite", scale)
	}
	p := attention.Problem{
		B: q.Dim(0), Tq: q.Dim(1), Tk: k.Dim(1), Heads: heads,
		Dh: q.Dim(2) / heads, Dv: v.Dim(2) / heads, Scale: scale, Causal: causal,
	}
	if err := p.Check(); err != nil {
		return attention.Problem{}, bad("%v", err)
	}
	return p, nil
}

type attentionFn struct {
	e       *Engine
	q, k, v tensor.Tensor // [B, Tq, H*Dh], [B, Tk, H*Dh], [B, Tk, H*Dv]
	p       attention.Problem
	out     []float32 // [B, Tq, H*Dv] saved for Backward
	lse     []float32 // [B, H, Tq] per-row log-sum-exp, saved for Backward
}

func (f *attentionFn) Operands() []mat.Tensor { return Operands(f.q, f.k, f.v) }

func (f *attentionFn) Forward() (mat.Tensor, error) {
	out := f.e.output(f.p.B * f.p.Tq * f.p.Heads * f.p.Dv) // [B, Tq, H*Dv]
	var lse []float32
	if AnyGrad(f.q, f.k, f.v) {
		lse = make([]float32, f.p.LSELen()) // [B, H, Tq]
	}
	if err := attention.Forward(f.e.B, f.e.pool, f.p, f.q.Data(), f.k.Data(), f.v.Data(), out, lse); err != nil {
		return nil, fmt.Errorf("ops: attention: %w", err)
	}
	if lse != nil {
		f.out, f.lse = out, lse
	}
	return tensor.Leaf(out), nil
}

func (f *attentionFn) Backward(gy mat.Tensor) error {
	grad := func(t tensor.Tensor) []float32 {
		if !t.RequiresGrad() {
			return nil
		}
		return f.e.scratch(t.Size()) // overwritten by the kernel
	}
	dq, dk, dv := grad(f.q), grad(f.k), grad(f.v)
	err := attention.Backward(f.e.B, f.e.pool, f.p, f.q.Data(), f.k.Data(), f.v.Data(), f.out, f.lse,
		tensor.Float32s(gy), dq, dk, dv)
	if err != nil {
		return fmt.Errorf("ops: attention: %w", err)
	}
	for _, g := range []struct {
		t tensor.Tensor
		d []float32
	}{{f.q, dq}, {f.k, dk}, {f.v, dv}} {
		if g.d != nil {
			f.e.accGrad(g.t, g.d)
		}
	}
	return nil
}
