package ops

import (
	"fmt"
	"sync"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Linear is y = x W^T + b over the last dimension: x [..., In], w [Out, In]
// (PyTorch layout), b [Out] or the zero Tensor; y is [..., Out].
func (e *Engine) Linear(x, w, b tensor.Tensor) (tensor.Tensor, error) {
	return e.LinearAdd(x, w, b, tensor.Tensor{})
}

// LinearAdd is Linear(x, w, b) + r, with r [..., Out] (a residual) or the
// zero Tensor, computed as one operator: the sum is the GEMM's starting
// value, which saves Add's pass over memory.
func (e *Engine) LinearAdd(x, w, b, r tensor.Tensor) (tensor.Tensor, error) {
	switch {
	case w.Rank() != 2:
		return tensor.Tensor{}, shapeErr("linear", x, w, "weight must be [Out, In]")
	case x.Rank() < 1 || x.Dim(-1) != w.Dim(1):
		return tensor.Tensor{}, shapeErr("linear", x, w, "last dimension of x must equal In of the weight")
	case b.Valid() && (b.Rank() != 1 || b.Dim(0) != w.Dim(0)):
		return tensor.Tensor{}, shapeErr("linear", w, b, "bias must be [Out]")
	}
	shape := x.Shape()
	shape[len(shape)-1] = w.Dim(0)
	if r.Valid() && !tensor.SameShape(r.Shape(), shape) {
		return tensor.Tensor{}, dimsErr("linear", r, fmt.Sprintf("output %v", shape), "the residual must have the output's shape")
	}
	f := &linear{e: e, x: x, w: w, b: b, r: r, m: x.Size() / max(w.Dim(1), 1), in: w.Dim(1), out: w.Dim(0)}
	return e.run(f, shape, AnyGrad(x, w, b, r))
}

type linear struct {
	e          *Engine
	x, w, b, r tensor.Tensor // [M, In], [Out, In], [Out] or absent, [M, Out] or absent
	m, in, out int
}

func (f *linear) Operands() []mat.Tensor { return Operands(f.x, f.w, f.b, f.r) }

func (f *linear) Forward() (mat.Tensor, error) {
	y := f.e.output(f.m * f.out) // [M, Out]
	if f.m == 0 || f.out == 0 {
		return tensor.Leaf(y), nil
	}
	beta := f.e.initRows(y, f.b, f.r, f.m, f.out)
	w := f.e.readWeight(f.w)
	f.e.gemmWB(false, true, f.m, f.out, f.in, f.x.Data(), f.in, w, f.in, beta, y, f.out)
	w.release()
	return tensor.Leaf(y), nil
}

// initRows sets each row of y [M, N] to the bias [N] plus the matching row
// of r [M, N], either of which may be absent, and returns the GEMM beta
// that keeps it: 1, or 0 when there is nothing to keep (y is left as is).
func (e *Engine) initRows(y []float32, b, r tensor.Tensor, m, n int) float32 {
	if !b.Valid() && !r.Valid() {
		return 0
	}
	var bias, res []float32
	if b.Valid() {
		bias = b.Data()
	}
	if r.Valid() {
		res = r.Data()
	}
	e.par(m, grain/max(n, 1)+1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ys := y[i*n : (i+1)*n]
			switch {
			case res == nil:
				copy(ys, bias)
			case bias == nil:
				copy(ys, res[i*n:])
			default:
				for j, v := range res[i*n : (i+1)*n] {
					ys[j] = v + bias[j]
				}
			}
		}
	})
	return 1
}

func (f *linear) Backward(gy mat.Tensor) error {
	g := tensor.Float32s(gy) // [M, Out]
	if f.r.Valid() && f.r.RequiresGrad() {
		defer f.e.handOn(f.r, gy) // after the last read of g
	}
	if f.x.RequiresGrad() {
		gx := f.e.scratch(f.m * f.in) // [M, In] = gy W
		w := f.e.readWeight(f.w)
		f.e.gemmWB(false, false, f.m, f.in, f.out, g, f.out, w, f.in, 0, gx, f.in)
		w.release()
		f.e.accGrad(f.x, gx)
	}
	if f.w.RequiresGrad() {
		gw := f.e.scratch(f.out * f.in) // [Out, In] = gy^T x
		f.e.B.Gemm(true, false, f.out, f.in, f.m, 1, g, f.out, f.x.Data(), f.in, 0, gw, f.in)
		f.e.accGrad(f.w, gw)
	}
	if f.b.Valid() && f.b.RequiresGrad() {
		gb := f.e.scratch(f.out)
		f.e.colSums(gb, g, f.m, f.out)
		f.e.accGrad(f.b, gb)
	}
	return nil
}

// colSums writes the column sums of the row-major [rows, cols] matrix a
// into dst [cols], accumulating in float64. Threads sum row blocks into
// private accumulators and merge them under a lock.
func (e *Engine) colSums(dst, a []float32, rows, cols int) {
	acc := make([]float64, cols)
	var mu sync.Mutex
	e.par(rows, grain/max(cols, 1), func(lo, hi int) {
		part := make([]float64, cols)
		for i := lo; i < hi; i++ {
			row := a[i*cols : (i+1)*cols]
			for j, v := range row {
				part[j] += float64(v)
			}
		}
		mu.Lock()
		for j, v := range part {
			acc[j] += v
		}
		mu.Unlock()
	})
	for j, v := range acc {
		dst[j] = float32(v)
	}
}
