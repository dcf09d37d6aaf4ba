package ops

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// LinearToTokens is Linear(ToTokens(x), w, b) without the transpose: x
// [B, C, H, W], w [O, C], b [O] or the zero Tensor -> [B, H*W, O]. It is
// also the 1x1 convolution of x by w viewed as [O, C, 1, 1], laid out as
// tokens (a SpatialTransformer's proj_in, the VAE attention's q, k, v).
func (e *Engine) LinearToTokens(x, w, b tensor.Tensor) (tensor.Tensor, error) {
	switch {
	case x.Rank() != 4 || w.Rank() != 2 || x.Dim(1) != w.Dim(1):
		return tensor.Tensor{}, shapeErr("linear_to_tokens", x, w, "want x [B, C, H, W] and w [O, C]")
	case b.Valid() && (b.Rank() != 1 || b.Dim(0) != w.Dim(0)):
		return tensor.Tensor{}, shapeErr("linear_to_tokens", w, b, "bias must be [O]")
	}
	f := &tokenLinear{e: e, x: x, w: w, b: b, nb: x.Dim(0), n: x.Dim(2) * x.Dim(3), c: w.Dim(1), o: w.Dim(0)}
	return e.run(f, []int{f.nb, f.n, f.o}, AnyGrad(x, w, b))
}

// LinearFromTokens is FromTokens(Linear(t, w, b), h, wd) + r without the
// transpose: t [B, h*wd, C], w [O, C], b [O] or the zero Tensor, r
// [B, O, h, wd] (a residual) or the zero Tensor -> [B, O, h, wd]. It is
// also the 1x1 convolution by w viewed as [O, C, 1, 1] of the image the
// tokens make (a SpatialTransformer's proj_out plus its residual).
func (e *Engine) LinearFromTokens(t, w, b, r tensor.Tensor, h, wd int) (tensor.Tensor, error) {
	switch {
	case t.Rank() != 3 || w.Rank() != 2 || t.Dim(2) != w.Dim(1):
		return tensor.Tensor{}, shapeErr("linear_from_tokens", t, w, "want t [B, N, C] and w [O, C]")
	case h < 1 || wd < 1 || t.Dim(1) != h*wd:
		return tensor.Tensor{}, dimsErr("linear_from_tokens", t, fmt.Sprintf("h=%d w=%d", h, wd), "want [B, h*w, C]")
	case b.Valid() && (b.Rank() != 1 || b.Dim(0) != w.Dim(0)):
		return tensor.Tensor{}, shapeErr("linear_from_tokens", w, b, "bias must be [O]")
	}
	shape := []int{t.Dim(0), w.Dim(0), h, wd}
	if r.Valid() && !tensor.SameShape(r.Shape(), shape) {
		return tensor.Tensor{}, dimsErr("linear_from_tokens", r, fmt.Sprintf("output %v", shape), "the residual must have the output's shape")
	}
	f := &tokenLinear{e: e, x: t, w: w, b: b, r: r, fromTokens: true, nb: t.Dim(0), n: h * wd, c: w.Dim(1), o: w.Dim(0)}
	return e.run(f, shape, AnyGrad(t, w, b, r))
}

// tokenLinear maps the C channels of each of N pixels to O by w, between
// the image layout [B, C, N] and the token layout [B, N, C]: image in,
// tokens out (LinearToTokens), or tokens in, image out (LinearFromTokens).
type tokenLinear struct {
	e          *Engine
	x, w, b, r tensor.Tensor // x [B, C, N] or [B, N, C]; w [O, C]; b [O]; r [B, O, N] (from tokens only)
	fromTokens bool
	nb, n      int // B, N
	c, o       int // C, O
}

func (f *tokenLinear) Operands() []mat.Tensor { return Operands(f.x, f.w, f.b, f.r) }

func (f *tokenLinear) Forward() (mat.Tensor, error) {
	x, n, c, o := f.x.Data(), f.n, f.c, f.o
	w := f.e.readWeight(f.w)
	defer w.release()
	y := f.e.output(f.nb * n * o)
	if f.fromTokens {
		beta := f.e.initOutput(y, f.b, f.r, f.nb, o, n)
		for b := 0; b < f.nb; b++ { // y_b [O, N] = w [O, C] x_b^T, x_b [N, C]
			f.e.gemmWA(false, true, o, n, c, w, c, x[b*n*c:], c, beta, y[b*o*n:], n)
		}
		return tensor.Leaf(y), nil
	}
	beta := f.e.initRows(y, f.b, tensor.Tensor{}, f.nb*n, o)
	for b := 0; b < f.nb; b++ { // y_b [N, O] = x_b^T w^T, x_b [C, N]
		f.e.gemmWB(true, true, n, o, c, x[b*c*n:], n, w, c, beta, y[b*n*o:], o)
	}
	return tensor.Leaf(y), nil
}

func (f *tokenLinear) Backward(gy mat.Tensor) error {
	dy, x, n, c, o := tensor.Float32s(gy), f.x.Data(), f.n, f.c, f.o
	var w weightRead // read only for dx
	if f.x.RequiresGrad() {
		w = f.e.readWeight(f.w)
		defer w.release()
	}
	if f.r.Valid() && f.r.RequiresGrad() {
		defer f.e.handOn(f.r, gy) // after the last read of dy
	}
	needB := f.b.Valid() && f.b.RequiresGrad()
	if f.fromTokens { // dy [B, O, N]
		if needB {
			db := f.e.scratchZero(o)
			for b := 0; b < f.nb; b++ {
				for k := 0; k < o; k++ {
					db[k] += float32(sum64(dy[(b*o+k)*n : (b*o+k+1)*n]))
				}
			}
			f.e.accGrad(f.b, db)
		}
		if f.x.RequiresGrad() {
			dx := f.e.scratch(f.x.Size()) // dx_b [N, C] = dy_b^T w
			for b := 0; b < f.nb; b++ {
				f.e.gemmWB(true, false, n, c, o, dy[b*o*n:], n, w, c, 0, dx[b*n*c:], c)
			}
			f.e.accGrad(f.x, dx)
		}
		if f.w.RequiresGrad() {
			dw := f.e.scratchZero(o * c) // [O, C] = sum_b dy_b x_b
			for b := 0; b < f.nb; b++ {
				f.e.B.Gemm(false, false, o, c, n, 1, dy[b*o*n:], n, x[b*n*c:], c, 1, dw, c)
			}
			f.e.accGrad(f.w, dw)
		}
		return nil
	}
	// dy [B, N, O]
	if needB {
		db := f.e.scratch(o)
		f.e.colSums(db, dy, f.nb*n, o)
		f.e.accGrad(f.b, db)
	}
	if f.x.RequiresGrad() {
		dx := f.e.scratch(f.x.Size()) // dx_b [C, N] = w^T dy_b^T
		for b := 0; b < f.nb; b++ {
			f.e.gemmWA(true, true, c, n, o, w, c, dy[b*n*o:], o, 0, dx[b*c*n:], n)
		}
		f.e.accGrad(f.x, dx)
	}
	if f.w.RequiresGrad() {
		dw := f.e.scratchZero(o * c) // [O, C] = sum_b dy_b^T x_b^T
		for b := 0; b < f.nb; b++ {
			f.e.B.Gemm(true, true, o, c, n, 1, dy[b*n*o:], o, x[b*c*n:], n, 1, dw, c)
		}
		f.e.accGrad(f.w, dw)
	}
	return nil
}
