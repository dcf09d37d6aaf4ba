package ops

import (
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/ops/internal/vmath"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// quickGELUAlpha is the sigmoid slope of QuickGELU (OpenAI CLIP).
const quickGELUAlpha = 1.702

// GELU is the exact Gaussian error linear unit x*Phi(x), Phi the standard
// normal CDF (Hendrycks & Gimpel, 2016), as torch's gelu without
// approximation.
func (e *Engine) GELU(x tensor.Tensor) (tensor.Tensor, error) {
	if err := missing("gelu", x); err != nil {
		return tensor.Tensor{}, err
	}
	return e.run(&gelu{e: e, x: x}, x.Shape(), AnyGrad(x))
}

// QuickGELU is x*sigmoid(1.702x), the GELU approximation of OpenAI CLIP.
func (e *Engine) QuickGELU(x tensor.Tensor) (tensor.Tensor, error) {
	if err := missing("quick_gelu", x); err != nil {
		return tensor.Tensor{}, err
	}
	return e.run(&gelu{e: e, x: x, quick: true}, x.Shape(), AnyGrad(x))
}

type gelu struct {
	e     *Engine
	x     tensor.Tensor
	quick bool
}

func (f *gelu) Operands() []mat.Tensor { return Operands(f.x) }

func (f *gelu) Forward() (mat.Tensor, error) {
	x := f.x.Data()
	y := f.e.output(len(x))
	f.e.blocks(len(x), func(lo, hi int, s []float32) {
		if f.quick {
			vmath.Sigmoids(s, x[lo:hi], quickGELUAlpha)
		} else {
			vmath.Phis(s, x[lo:hi])
		}
		for i, v := range x[lo:hi] {
			y[lo+i] = v * s[i]
		}
	})
	return tensor.Leaf(y), nil
}

func (f *gelu) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	x, g := f.x.Data(), tensor.Float32s(gy)
	gx := f.e.scratch(len(x))
	f.e.blocks(len(x), func(lo, hi int, s []float32) {
		xs, gs, d := x[lo:hi], g[lo:hi], gx[lo:hi]
		if f.quick {
			vmath.Sigmoids(s, xs, quickGELUAlpha)
			for i, v := range xs {
				d[i] = gs[i] * s[i] * (1 + quickGELUAlpha*v*(1-s[i]))
			}
			return
		}
		vmath.GELUGrads(d, xs, gs, s)
	})
	f.e.accGrad(f.x, gx)
	return nil
}

// GEGLU is the gated GELU of the SD feed-forward (Shazeer, "GLU Variants
// Improve Transformer", 2020): x [..., 2D] splits into a = x[..., :D] and
// gate = x[..., D:], and the result [..., D] is a * GELU(gate) (exact).
func (e *Engine) GEGLU(x tensor.Tensor) (tensor.Tensor, error) {
	if x.Rank() < 1 || x.Dim(-1)%2 != 0 {
		return tensor.Tensor{}, dimsErr("geglu", x, "[..., 2D]", "last dimension must be even")
	}
	shape := x.Shape()
	shape[len(shape)-1] /= 2
	f := &geglu{e: e, x: x, d: x.Dim(-1) / 2}
	return e.run(f, shape, AnyGrad(x))
}

type geglu struct {
	e *Engine
	x tensor.Tensor // [rows, 2D]
	d int
}

func (f *geglu) Operands() []mat.Tensor { return Operands(f.x) }

// rows runs fn over the rows of x in parallel, and over each row's D
// columns in blocks: a and g are the matching pieces of the two halves,
// j0 the first column.
func (f *geglu) rows(fn func(r, j0 int, a, g, s []float32)) {
	x, d := f.x.Data(), f.d
	f.e.par(len(x)/max(2*d, 1), grain/(2*d+1)+1, func(lo, hi int) {
		var buf [block]float32
		for r := lo; r < hi; r++ {
			for j0 := 0; j0 < d; j0 += block {
				j1 := min(j0+block, d)
				fn(r, j0, x[r*2*d+j0:r*2*d+j1], x[r*2*d+d+j0:r*2*d+d+j1], buf[:j1-j0])
			}
		}
	})
}

func (f *geglu) Forward() (mat.Tensor, error) {
	d := f.d
	y := f.e.output(f.x.Size() / 2) // [rows, D]
	f.rows(func(r, j0 int, a, g, s []float32) {
		vmath.Phis(s, g)
		ys := y[r*d+j0:]
		for j, v := range g {
			ys[j] = a[j] * (v * s[j])
		}
	})
	return tensor.Leaf(y), nil
}

func (f *geglu) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	dy, d := tensor.Float32s(gy), f.d
	gx := f.e.scratch(f.x.Size()) // [rows, 2D]
	f.rows(func(r, j0 int, a, g, _ []float32) {
		n := len(a)
		vmath.GEGLUGrads(gx[r*2*d+j0:][:n], gx[r*2*d+d+j0:][:n], a, g, dy[r*d+j0:][:n])
	})
	f.e.accGrad(f.x, gx)
	return nil
}
