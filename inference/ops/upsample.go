package ops

import (
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Upsample2x is nearest-neighbour upsampling by 2: x [B, C, H, W] ->
// [B, C, 2H, 2W], each input pixel copied to a 2x2 block.
func (e *Engine) Upsample2x(x tensor.Tensor) (tensor.Tensor, error) {
	if x.Rank() != 4 {
		return tensor.Tensor{}, dimsErr("upsample2x", x, "[B, C, H, W]", "want rank 4")
	}
	f := &upsample2x{e: e, x: x, planes: x.Dim(0) * x.Dim(1), h: x.Dim(2), w: x.Dim(3)}
	return run(f, []int{x.Dim(0), x.Dim(1), 2 * x.Dim(2), 2 * x.Dim(3)}, anyGrad(x))
}

type upsample2x struct {
	e            *Engine
	x            tensor.Tensor // [B*C, H, W]
	planes, h, w int
}

func (f *upsample2x) Operands() []mat.Tensor { return operands(f.x) }

func (f *upsample2x) Forward() (mat.Tensor, error) {
	x, h, w := f.x.Data(), f.h, f.w
	y := make([]float32, 4*len(x)) // [B*C, 2H, 2W]
	f.e.par(f.planes*h, grain/(4*w+1)+1, func(lo, hi int) {
		for pr := lo; pr < hi; pr++ { // one input row
			src := x[pr*w : (pr+1)*w]
			top := y[pr*4*w : pr*4*w+2*w]
			for j, v := range src {
				top[2*j], top[2*j+1] = v, v
			}
			copy(y[pr*4*w+2*w:(pr+1)*4*w], top)
		}
	})
	return tensor.Leaf(y), nil
}

func (f *upsample2x) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	dy, w := tensor.Float32s(gy), f.w
	dx := f.e.scratch(f.planes * f.h * w) // [B*C, H, W]
	f.e.par(f.planes*f.h, grain/(4*w+1)+1, func(lo, hi int) {
		for pr := lo; pr < hi; pr++ {
			top, bot := dy[pr*4*w:pr*4*w+2*w], dy[pr*4*w+2*w:(pr+1)*4*w]
			d := dx[pr*w : (pr+1)*w]
			for j := range d {
				d[j] = (top[2*j] + top[2*j+1]) + (bot[2*j] + bot[2*j+1])
			}
		}
	})
	f.e.accGrad(f.x, dx)
	return nil
}
