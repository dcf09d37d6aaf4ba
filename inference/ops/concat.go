package ops

import (
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// ConcatChannels joins a [B, C1, ...] and b [B, C2, ...] along dimension 1
// into [B, C1+C2, ...] (the UNet's skip connections, a first).
func (e *Engine) ConcatChannels(a, b tensor.Tensor) (tensor.Tensor, error) {
	sa, sb := a.Shape(), b.Shape()
	ok := len(sa) >= 2 && len(sa) == len(sb) && sa[0] == sb[0]
	for i := 2; ok && i < len(sa); i++ {
		ok = sa[i] == sb[i]
	}
	if !ok {
		return tensor.Tensor{}, shapeErr("concat_channels", a, b, "want [B, C1, ...] and [B, C2, ...] with equal B and trailing dimensions")
	}
	shape := a.Shape()
	shape[1] += sb[1]
	n := a.Dim(0)
	f := &concat{e: e, a: a, b: b, n: n, la: a.Size() / max(n, 1), lb: b.Size() / max(n, 1)}
	return e.run(f, shape, AnyGrad(a, b))
}

type concat struct {
	e      *Engine
	a, b   tensor.Tensor // [B, la], [B, lb]
	n      int
	la, lb int // per-batch lengths C1*S and C2*S
}

func (f *concat) Operands() []mat.Tensor { return Operands(f.a, f.b) }

func (f *concat) Forward() (mat.Tensor, error) {
	a, b, la, lb := f.a.Data(), f.b.Data(), f.la, f.lb
	y := f.e.output(f.n * (la + lb)) // [B, la+lb]
	f.e.par(f.n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			copy(y[i*(la+lb):], a[i*la:(i+1)*la])
			copy(y[i*(la+lb)+la:], b[i*lb:(i+1)*lb])
		}
	})
	return tensor.Leaf(y), nil
}

func (f *concat) Backward(gy mat.Tensor) error {
	g, la, lb := tensor.Float32s(gy), f.la, f.lb
	for k, t := range []tensor.Tensor{f.a, f.b} {
		if !t.RequiresGrad() {
			continue
		}
		off, l := k*la, []int{la, lb}[k]
		d := f.e.scratch(f.n * l)
		for i := 0; i < f.n; i++ {
			copy(d[i*l:(i+1)*l], g[i*(la+lb)+off:])
		}
		f.e.accGrad(t, d)
	}
	return nil
}
