package ops

import (
	"math"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// SiLU is x*sigmoid(x) elementwise (also called swish).
func (e *Engine) SiLU(x tensor.Tensor) (tensor.Tensor, error) {
	return run(&silu{e: e, x: x}, x.Shape(), anyGrad(x))
}

type silu struct {
	e *Engine
	x tensor.Tensor
}

func (f *silu) Operands() []mat.Tensor { return operands(f.x) }

func (f *silu) Forward() (mat.Tensor, error) {
	x := f.x.Data()
	y := make([]float32, len(x))
	f.e.B.Parallel(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := x[i]
			y[i] = v / (1 + float32(math.Exp(float64(-v))))
		}
	})
	return tensor.Leaf(y), nil
}

func (f *silu) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	x, g := f.x.Data(), tensor.Float32s(gy)
	gx := make([]float32, len(x))
	f.e.B.Parallel(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := 1 / (1 + float32(math.Exp(float64(-x[i]))))
			gx[i] = g[i] * s * (1 + x[i]*(1-s))
		}
	})
	tensor.AccGrad(f.x.Node(), gx)
	return nil
}
