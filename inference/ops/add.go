package ops

import (
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Add is a + b elementwise; the shapes must be equal.
func (e *Engine) Add(a, b tensor.Tensor) (tensor.Tensor, error) {
	if err := missing("add", a, b); err != nil {
		return tensor.Tensor{}, err
	}
	if !tensor.SameShape(a.Shape(), b.Shape()) {
		return tensor.Tensor{}, shapeErr("add", a, b, "shapes must be equal")
	}
	return e.run(&add{e: e, a: a, b: b}, a.Shape(), AnyGrad(a, b))
}

type add struct {
	e    *Engine
	a, b tensor.Tensor
}

func (f *add) Operands() []mat.Tensor { return Operands(f.a, f.b) }

func (f *add) Forward() (mat.Tensor, error) {
	a, b := f.a.Data(), f.b.Data()
	y := f.e.output(len(a))
	f.e.par(len(a), grain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y[i] = a[i] + b[i]
		}
	})
	return tensor.Leaf(y), nil
}

func (f *add) Backward(gy mat.Tensor) error {
	// spago copies a delivered gradient, so a can get gy itself; b then
	// takes the buffer (handOn), the last read of it
	if f.a.RequiresGrad() {
		tensor.AccGrad(f.a.Node(), tensor.Float32s(gy))
	}
	if f.b.RequiresGrad() {
		f.e.handOn(f.b, gy)
	}
	return nil
}

// AddChannel is x + c broadcast over the spatial dimensions: x [B, C,
// ...spatial], c [B, C] (the ResBlock's time-embedding projection).
func (e *Engine) AddChannel(x, c tensor.Tensor) (tensor.Tensor, error) {
	if x.Rank() < 2 || c.Rank() != 2 || x.Dim(0) != c.Dim(0) || x.Dim(1) != c.Dim(1) {
		return tensor.Tensor{}, shapeErr("add_channel", x, c, "want x [B, C, ...] and c [B, C]")
	}
	f := &addChannel{e: e, x: x, c: c, s: x.Size() / max(c.Size(), 1)}
	return e.run(f, x.Shape(), AnyGrad(x, c))
}

type addChannel struct {
	e    *Engine
	x, c tensor.Tensor // [B*C, S], [B*C]
	s    int
}

func (f *addChannel) Operands() []mat.Tensor { return Operands(f.x, f.c) }

func (f *addChannel) Forward() (mat.Tensor, error) {
	x, c, s := f.x.Data(), f.c.Data(), f.s
	y := f.e.output(len(x)) // [B*C, S]
	f.e.par(len(c), grain/(s+1)+1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			v, xs, ys := c[p], x[p*s:(p+1)*s], y[p*s:(p+1)*s]
			for i, u := range xs {
				ys[i] = u + v
			}
		}
	})
	return tensor.Leaf(y), nil
}

func (f *addChannel) Backward(gy mat.Tensor) error {
	g := tensor.Float32s(gy)
	if f.x.RequiresGrad() {
		defer f.e.handOn(f.x, gy) // after the last read of g
	}
	if f.c.RequiresGrad() {
		dc := f.e.scratch(f.c.Size()) // [B*C]
		f.e.par(len(dc), grain/(f.s+1)+1, func(lo, hi int) {
			for p := lo; p < hi; p++ {
				dc[p] = float32(sum64(g[p*f.s : (p+1)*f.s]))
			}
		})
		f.e.accGrad(f.c, dc)
	}
	return nil
}

// Scale is x * s.
func (e *Engine) Scale(x tensor.Tensor, s float32) (tensor.Tensor, error) {
	if err := missing("scale", x); err != nil {
		return tensor.Tensor{}, err
	}
	return e.run(&scale{e: e, x: x, s: s}, x.Shape(), AnyGrad(x))
}

type scale struct {
	e *Engine
	x tensor.Tensor
	s float32
}

func (f *scale) Operands() []mat.Tensor { return Operands(f.x) }

func (f *scale) Forward() (mat.Tensor, error) {
	return tensor.Leaf(f.e.scaled(f.x.Data(), f.s, f.e.output(f.x.Size()))), nil
}

func (f *scale) Backward(gy mat.Tensor) error {
	if f.x.RequiresGrad() {
		g := tensor.Float32s(gy)
		f.e.accGrad(f.x, f.e.scaled(g, f.s, f.e.scratch(len(g))))
	}
	return nil
}

// scaled writes x*s into dst and returns it.
func (e *Engine) scaled(x []float32, s float32, dst []float32) []float32 {
	e.par(len(x), grain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] = x[i] * s
		}
	})
	return dst
}
