package ops

import (
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/ops/internal/convkern"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Conv2DParams are a convolution's stride and zero padding.
type Conv2DParams struct {
	Stride int    // 0 means 1
	Pad    [4]int // top, bottom, left, right
}

// Pad returns n on all four sides, for Conv2DParams.Pad.
func Pad(n int) [4]int { return [4]int{n, n, n, n} }

// colBudget bounds the im2col buffer (floats): the general path processes
// output rows in chunks whose column matrix fits it.
const colBudget = 1 << 22

// rowsMinC is the smallest channel count for the stride-1 row path: its
// GEMMs have inner dimension C*KW, too thin below this (im2col's is
// C*KH*KW).
const rowsMinC = 32

// Conv2D is a 2-D cross-correlation (PyTorch Conv2d): x [B, C, H, W],
// w [O, C, KH, KW], b [O] or the zero Tensor -> [B, O, Ho, Wo] with
// Ho = (H+top+bottom-KH)/stride + 1 (likewise Wo).
func (e *Engine) Conv2D(x, w, b tensor.Tensor, p Conv2DParams) (tensor.Tensor, error) {
	g, err := conv2dGeom(x, w, b, p)
	if err != nil {
		return tensor.Tensor{}, err
	}
	f := &conv2d{e: e, x: x, w: w, b: b, g: g, path: pathOf(g)}
	return run(f, []int{g.B, g.O, g.Ho, g.Wo}, anyGrad(x, w, b))
}

func conv2dGeom(x, w, b tensor.Tensor, p Conv2DParams) (convkern.Geom, error) {
	var g convkern.Geom
	switch {
	case x.Rank() != 4 || w.Rank() != 4:
		return g, shapeErr("conv2d", x, w, "want x [B, C, H, W] and w [O, C, KH, KW]")
	case x.Dim(1) != w.Dim(1):
		return g, shapeErr("conv2d", x, w, "input channels differ")
	case x.Size() == 0 || w.Size() == 0:
		return g, shapeErr("conv2d", x, w, "empty tensor")
	case b.Valid() && (b.Rank() != 1 || b.Dim(0) != w.Dim(0)):
		return g, shapeErr("conv2d", w, b, "bias must be [O]")
	case p.Stride < 0 || p.Pad[0] < 0 || p.Pad[1] < 0 || p.Pad[2] < 0 || p.Pad[3] < 0:
		return g, shapeErr("conv2d", x, w, "negative stride or padding")
	}
	g = convkern.Geom{
		B: x.Dim(0), C: x.Dim(1), H: x.Dim(2), W: x.Dim(3),
		O: w.Dim(0), KH: w.Dim(2), KW: w.Dim(3), S: max(p.Stride, 1),
		PT: p.Pad[0], PB: p.Pad[1], PL: p.Pad[2], PR: p.Pad[3],
	}
	if g.Hp() < g.KH || g.Wp() < g.KW {
		return g, shapeErr("conv2d", x, w, "kernel larger than the padded input")
	}
	g.Ho, g.Wo = (g.Hp()-g.KH)/g.S+1, (g.Wp()-g.KW)/g.S+1
	return g, nil
}

// convPath is one of the three ways a convolution is computed.
type convPath int

const (
	pathIm2col convPath = iota // any geometry: im2col / col2im + GEMM in row chunks
	pathDirect                 // 1x1, stride 1, no padding: x is the GEMM operand
	pathRows                   // stride 1: im2col over (c, kw) only, one GEMM per kernel row
)

// pathOf picks the fastest path valid for g.
func pathOf(g convkern.Geom) convPath {
	switch {
	case g.S == 1 && g.Taps() == 1 && g.PT+g.PB+g.PL+g.PR == 0:
		return pathDirect
	case g.S == 1 && g.C >= rowsMinC:
		return pathRows
	}
	return pathIm2col
}

type conv2d struct {
	e       *Engine
	x, w, b tensor.Tensor // [B, C, H, W], [O, C, KH, KW], [O] or absent
	g       convkern.Geom
	path    convPath
	budget  int // im2col floats per chunk; 0 means colBudget
}

func (f *conv2d) Operands() []mat.Tensor { return operands(f.x, f.w, f.b) }

func (f *conv2d) Forward() (mat.Tensor, error) {
	g := f.g
	y := make([]float32, g.B*g.O*g.Ho*g.Wo) // [B, O, Ho, Wo]
	var bias []float32
	if f.b.Valid() {
		bias = f.b.Data()
	}
	switch f.path {
	case pathDirect:
		f.forwardDirect(y, bias)
	case pathRows:
		f.forwardRows(y, bias)
	default:
		f.forwardIm2col(y, bias)
	}
	return tensor.Leaf(y), nil
}

func (f *conv2d) Backward(gy mat.Tensor) error {
	g, dy := f.g, tensor.Float32s(gy) // [B, O, Ho, Wo]
	if f.b.Valid() && f.b.RequiresGrad() {
		db := f.e.scratch(g.O)
		f.e.par(g.O, grain/(g.B*g.Ho*g.Wo)+1, func(lo, hi int) {
			n := g.Ho * g.Wo
			for o := lo; o < hi; o++ {
				var s float64
				for b := 0; b < g.B; b++ {
					s += sum64(dy[(b*g.O+o)*n : (b*g.O+o+1)*n])
				}
				db[o] = float32(s)
			}
		})
		f.e.accGrad(f.b, db)
	}
	needX, needW := f.x.RequiresGrad(), f.w.RequiresGrad()
	if !needX && !needW {
		return nil
	}
	switch f.path {
	case pathDirect:
		f.backwardDirect(dy, needX, needW)
	case pathRows:
		f.backwardRows(dy, needX, needW)
	default:
		f.backwardIm2col(dy, needX, needW)
	}
	return nil
}

// fillRows sets each row r of y (rows of length n, stride ld) to bias[r].
func (e *Engine) fillRows(y, bias []float32, rows, n, ld int) {
	e.par(rows, grain/max(n, 1)+1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := y[r*ld : r*ld+n]
			for j := range row {
				row[j] = bias[r]
			}
		}
	})
}

// Direct path: per image, y_b [O, HW] = w [O, C] x_b [C, HW].

func (f *conv2d) forwardDirect(y, bias []float32) {
	g, x, w := f.g, f.x.Data(), f.w.Data()
	hw := g.H * g.W
	for b := 0; b < g.B; b++ {
		yb := y[b*g.O*hw : (b+1)*g.O*hw]
		var beta float32
		if bias != nil {
			f.e.fillRows(yb, bias, g.O, hw, hw)
			beta = 1
		}
		f.e.B.Gemm(false, false, g.O, hw, g.C, 1, w, g.C, x[b*g.C*hw:], hw, beta, yb, hw)
	}
}

func (f *conv2d) backwardDirect(dy []float32, needX, needW bool) {
	g, x, w := f.g, f.x.Data(), f.w.Data()
	hw := g.H * g.W
	if needW {
		dw := f.e.scratch(g.O * g.C) // [O, C] = sum_b dy_b x_b^T
		for b := 0; b < g.B; b++ {
			f.e.B.Gemm(false, true, g.O, g.C, hw, 1, dy[b*g.O*hw:], hw, x[b*g.C*hw:], hw, float32(min(b, 1)), dw, g.C)
		}
		f.e.accGrad(f.w, dw)
	}
	if needX {
		dx := f.e.scratch(g.B * g.C * hw) // dx_b [C, HW] = w^T dy_b
		for b := 0; b < g.B; b++ {
			f.e.B.Gemm(true, false, g.C, hw, g.O, 1, w, g.C, dy[b*g.O*hw:], hw, 0, dx[b*g.C*hw:], hw)
		}
		f.e.accGrad(f.x, dx)
	}
}

// Im2col path: per image and chunk of output rows, y_b[:, rows] =
// w [O, C*KH*KW] col [C*KH*KW, rows*Wo].

// chunkRows is the number of output rows per im2col chunk.
func (f *conv2d) chunkRows() int {
	budget := f.budget
	if budget == 0 {
		budget = colBudget
	}
	return max(1, min(f.g.Ho, budget/(f.g.C*f.g.Taps()*f.g.Wo)))
}

func (f *conv2d) forwardIm2col(y, bias []float32) {
	g, x, w := f.g, f.x.Data(), f.w.Data()
	ckk, hw, ohw := g.C*g.Taps(), g.H*g.W, g.Ho*g.Wo
	rc := f.chunkRows()
	col := f.e.scratch(ckk * rc * g.Wo) // [C*KH*KW, rows*Wo]
	for b := 0; b < g.B; b++ {
		yb := y[b*g.O*ohw : (b+1)*g.O*ohw]
		var beta float32
		if bias != nil {
			f.e.fillRows(yb, bias, g.O, ohw, ohw)
			beta = 1
		}
		for r0 := 0; r0 < g.Ho; r0 += rc {
			r1 := min(r0+rc, g.Ho)
			nc := (r1 - r0) * g.Wo
			convkern.Im2col(f.e.par, col, x[b*g.C*hw:(b+1)*g.C*hw], g, r0, r1)
			f.e.B.Gemm(false, false, g.O, nc, ckk, 1, w, ckk, col, nc, beta, yb[r0*g.Wo:], ohw)
		}
	}
	f.e.release(col)
}

func (f *conv2d) backwardIm2col(dy []float32, needX, needW bool) {
	g, x, w := f.g, f.x.Data(), f.w.Data()
	ckk, hw, ohw := g.C*g.Taps(), g.H*g.W, g.Ho*g.Wo
	rc := f.chunkRows()
	col := f.e.scratch(ckk * rc * g.Wo) // [C*KH*KW, rows*Wo]: inputs, then their gradients
	var dw, dx []float32
	if needW {
		dw = f.e.scratchZero(g.O * ckk) // [O, C*KH*KW]
	}
	if needX {
		dx = f.e.scratchZero(g.B * g.C * hw) // [B, C, H, W]
	}
	for b := 0; b < g.B; b++ {
		for r0 := 0; r0 < g.Ho; r0 += rc {
			r1 := min(r0+rc, g.Ho)
			nc := (r1 - r0) * g.Wo
			dyc := dy[b*g.O*ohw+r0*g.Wo:] // [O, nc], row stride Ho*Wo
			if needW {
				convkern.Im2col(f.e.par, col, x[b*g.C*hw:(b+1)*g.C*hw], g, r0, r1)
				f.e.B.Gemm(false, true, g.O, ckk, nc, 1, dyc, ohw, col, nc, 1, dw, ckk)
			}
			if needX {
				f.e.B.Gemm(true, false, ckk, nc, g.O, 1, w, ckk, dyc, ohw, 0, col, nc)
				convkern.Col2im(f.e.par, dx[b*g.C*hw:(b+1)*g.C*hw], col, g, r0, r1)
			}
		}
	}
	f.e.release(col)
	if needW {
		f.e.accGrad(f.w, dw)
	}
	if needX {
		f.e.accGrad(f.x, dx)
	}
}

// Row path (stride 1): per image and chunk of output rows [r0, r1), col =
// im2col of the chunk's input rows over (c, kw) only [C*KW, (r1-r0+KH-1)*Wo],
// and y_b[:, rows] = sum over kh of w3[kh] [O, C*KW] col viewed kh rows down.

// rowChunk is the number of output rows per row-path chunk.
func (f *conv2d) rowChunk() int {
	budget := f.budget
	if budget == 0 {
		budget = colBudget
	}
	g := f.g
	return max(1, min(g.Ho, budget/(g.C*g.KW*g.Wo)-(g.KH-1)))
}

func (f *conv2d) rowWeights() []float32 {
	w3 := f.e.scratch(f.w.Size()) // [KH][O][C*KW]
	convkern.PackRows(f.e.par, w3, f.w.Data(), f.g)
	return w3
}

func (f *conv2d) forwardRows(y, bias []float32) {
	g, x := f.g, f.x.Data()
	ck, hw, ohw := g.C*g.KW, g.H*g.W, g.Ho*g.Wo
	rg, rc := g.RowGeom(), f.rowChunk()
	w3 := f.rowWeights()
	col := f.e.scratch(ck * (rc + g.KH - 1) * g.Wo) // [C*KW, rows*Wo]
	for b := 0; b < g.B; b++ {
		yb := y[b*g.O*ohw : (b+1)*g.O*ohw]
		if bias != nil {
			f.e.fillRows(yb, bias, g.O, ohw, ohw)
		}
		for r0 := 0; r0 < g.Ho; r0 += rc {
			r1 := min(r0+rc, g.Ho)
			ld := (r1 - r0 + g.KH - 1) * g.Wo
			convkern.Im2col(f.e.par, col, x[b*g.C*hw:(b+1)*g.C*hw], rg, r0, r1+g.KH-1)
			for kh := 0; kh < g.KH; kh++ {
				beta := float32(1)
				if kh == 0 && bias == nil {
					beta = 0
				}
				f.e.B.Gemm(false, false, g.O, (r1-r0)*g.Wo, ck, 1, w3[kh*g.O*ck:], ck, col[kh*g.Wo:], ld,
					beta, yb[r0*g.Wo:], ohw)
			}
		}
	}
	f.e.release(w3, col)
}

func (f *conv2d) backwardRows(dy []float32, needX, needW bool) {
	g, x := f.g, f.x.Data()
	ck, hw, ohw := g.C*g.KW, g.H*g.W, g.Ho*g.Wo
	rg, rc := g.RowGeom(), f.rowChunk()
	w3 := f.rowWeights()
	col := f.e.scratch(ck * (rc + g.KH - 1) * g.Wo) // [C*KW, rows*Wo]: inputs, then their gradients
	var dw3, dx []float32
	if needW {
		dw3 = f.e.scratchZero(f.w.Size()) // [KH][O][C*KW]
	}
	if needX {
		dx = f.e.scratchZero(g.B * g.C * hw) // [B, C, H, W]
	}
	for b := 0; b < g.B; b++ {
		for r0 := 0; r0 < g.Ho; r0 += rc {
			r1 := min(r0+rc, g.Ho)
			n, ld := (r1-r0)*g.Wo, (r1-r0+g.KH-1)*g.Wo
			dyc := dy[b*g.O*ohw+r0*g.Wo:] // [O, n], row stride Ho*Wo
			if needW {
				convkern.Im2col(f.e.par, col, x[b*g.C*hw:(b+1)*g.C*hw], rg, r0, r1+g.KH-1)
				for kh := 0; kh < g.KH; kh++ {
					f.e.B.Gemm(false, true, g.O, ck, n, 1, dyc, ohw, col[kh*g.Wo:], ld, 1, dw3[kh*g.O*ck:], ck)
				}
			}
			if needX {
				clear(col[:ck*ld])
				for kh := 0; kh < g.KH; kh++ {
					f.e.B.Gemm(true, false, ck, n, g.O, 1, w3[kh*g.O*ck:], ck, dyc, ohw, 1, col[kh*g.Wo:], ld)
				}
				convkern.Col2im(f.e.par, dx[b*g.C*hw:(b+1)*g.C*hw], col, rg, r0, r1+g.KH-1)
			}
		}
	}
	f.e.release(w3, col)
	if needW {
		dw := f.e.scratch(f.w.Size()) // [O, C, KH, KW]
		convkern.UnpackRows(f.e.par, dw, dw3, g)
		f.e.release(dw3)
		f.e.accGrad(f.w, dw)
	}
	if needX {
		f.e.accGrad(f.x, dx)
	}
}

// sum64 sums v in float64 with four independent accumulators.
func sum64(v []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		s0 += float64(v[i])
		s1 += float64(v[i+1])
		s2 += float64(v[i+2])
		s3 += float64(v[i+3])
	}
	for ; i < len(v); i++ {
		s0 += float64(v[i])
	}
	return (s0 + s1) + (s2 + s3)
}
