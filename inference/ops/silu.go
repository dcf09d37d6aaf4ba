package ops

import (
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/ops/internal/vmath"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// SiLU is x*sigmoid(x) elementwise (also called swish).
func (e *Engine) SiLU(x tensor.Tensor) (tensor.Tensor, error) {
	if err := missing("silu", x); err != nil {
		return tensor.Tensor{}, err
	}
	return e.run(&silu{e: e, x: x}, x.Shape(), AnyGrad(x))
}

type silu struct {
	e *Engine
	x tensor.Tensor
}

func (f *silu) Operands() []mat.Tensor { return Operands(f.x) }

func (f *silu) Forward() (mat.Tensor, error) {
	x := f.x.Data()
	y := f.e.output(len(x))
	f.e.blocks(len(x), func(lo, hi int, s []float32) {
		vmath.Sigmoids(s, x[lo:hi], 1)
		for i, v := range x[lo:hi] {
			y[lo+i] = v * s[i]
		}
	})
	return tensor.Leaf(y), nil
}

func (f *silu) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	x, g := f.x.Data(), tensor.Float32s(gy)
	gx := f.e.scratch(len(x))
	f.e.blocks(len(x), func(lo, hi int, s []float32) {
		vmath.Sigmoids(s, x[lo:hi], 1)
		for i, v := range x[lo:hi] {
			gx[lo+i] = g[lo+i] * s[i] * (1 + v*(1-s[i]))
		}
	})
	f.e.accGrad(f.x, gx)
	return nil
}
