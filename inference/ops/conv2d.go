package ops

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/ops/internal/convkern"
	"github.com/perfusion-studio/perfusion/inference/ops/internal/wino"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// ConvLayout is the memory order of a convolution weight.
type ConvLayout int

const (
	// OIHW is PyTorch's [O, C, KH, KW], as checkpoints store weights.
	OIHW ConvLayout = iota
	// OHIW is [O, KH, C, KW], the order Conv2D computes in: a weight held
	// (or converted) in it skips a reordering pass per call.
	OHIW
)

// Conv2DParams are a convolution's stride, zero padding and weight layout.
type Conv2DParams struct {
	Stride int        // 0 means 1
	Pad    [4]int     // top, bottom, left, right
	Layout ConvLayout // of the weight; the zero value is OIHW
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
// w [O, C, KH, KW] (or [O, KH, C, KW] when p.Layout is OHIW), b [O] or the
// zero Tensor -> [B, O, Ho, Wo] with Ho = (H+top+bottom-KH)/stride + 1
// (likewise Wo).
func (e *Engine) Conv2D(x, w, b tensor.Tensor, p Conv2DParams) (tensor.Tensor, error) {
	return e.Conv2DAdd(x, w, b, tensor.Tensor{}, p)
}

// Conv2DAdd is Conv2D(x, w, b, p) + r, with r [B, O, Ho, Wo] (a residual)
// or the zero Tensor, computed as one operator: the sum is the GEMM's
// starting value, which saves Add's pass over memory.
func (e *Engine) Conv2DAdd(x, w, b, r tensor.Tensor, p Conv2DParams) (tensor.Tensor, error) {
	g, err := conv2dGeom(x, w, b, p)
	if err != nil {
		return tensor.Tensor{}, err
	}
	shape := []int{g.B, g.O, g.Ho, g.Wo}
	if r.Valid() && !tensor.SameShape(r.Shape(), shape) {
		return tensor.Tensor{}, dimsErr("conv2d", r, fmt.Sprintf("output %v", shape), "the residual must have the output's shape")
	}
	f := &conv2d{e: e, x: x, w: w, b: b, r: r, g: g, layout: p.Layout, path: pathOf(g, e.winograd())}
	return e.run(f, shape, AnyGrad(x, w, b, r))
}

func conv2dGeom(x, w, b tensor.Tensor, p Conv2DParams) (convkern.Geom, error) {
	var g convkern.Geom
	ci, kh := 1, 2 // dimensions of w holding C and KH
	if p.Layout == OHIW {
		ci, kh = 2, 1
	}
	switch {
	case p.Layout != OIHW && p.Layout != OHIW:
		return g, shapeErr("conv2d", x, w, fmt.Sprintf("unknown weight layout %d", p.Layout))
	case x.Rank() != 4 || w.Rank() != 4:
		return g, shapeErr("conv2d", x, w, "want x [B, C, H, W] and w [O, C, KH, KW]")
	case x.Dim(1) != w.Dim(ci):
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
		O: w.Dim(0), KH: w.Dim(kh), KW: w.Dim(3), S: max(p.Stride, 1),
		PT: p.Pad[0], PB: p.Pad[1], PL: p.Pad[2], PR: p.Pad[3],
	}
	if g.Hp() < g.KH || g.Wp() < g.KW {
		return g, shapeErr("conv2d", x, w, "kernel larger than the padded input")
	}
	g.Ho, g.Wo = (g.Hp()-g.KH)/g.S+1, (g.Wp()-g.KW)/g.S+1
	return g, nil
}

// convPath is one of the ways a convolution is computed.
type convPath int

const (
	pathIm2col   convPath = iota // any geometry: im2col / col2im + GEMM in row chunks
	pathDirect                   // 1x1, stride 1, no padding: x is the GEMM operand
	pathRows                     // stride 1: im2col over (c, kw) only, one GEMM per kernel row
	pathBatched                  // any geometry, small images: one im2col GEMM for the whole batch
	pathWinograd                 // 3x3, stride 1: Winograd F(2x2, 3x3) tiles (winograd.go)
)

// batchedMaxPixels is the largest output image (Ho*Wo) that takes the
// batched path: below it a per-image GEMM is too narrow to pay for packing
// the weight (at SD1.5's 8x8 and 4x4 levels the weight is up to
// 1280x9x2560 values and an image has 64 or 16 pixels), so the images of a
// batch share one pass over the weight. The path depends on the image
// size only, so an image gives the same values alone and in a batch.
const batchedMaxPixels = 64

// pathOf picks the fastest path valid for g, the Winograd one only if
// winograd.
func pathOf(g convkern.Geom, winograd bool) convPath {
	switch {
	case g.S == 1 && g.Taps() == 1 && g.PT+g.PB+g.PL+g.PR == 0:
		return pathDirect
	case g.Taps() > 1 && g.Ho*g.Wo <= batchedMaxPixels:
		return pathBatched
	case winograd && winogradFits(g) && min(g.C, g.O) >= winoMinChannels && winoTiles(g) >= winoMinTiles &&
		wino.Taps*g.C*g.O <= winoMaxFilter:
		return pathWinograd
	case g.S == 1 && g.C >= rowsMinC:
		return pathRows
	}
	return pathIm2col
}

type conv2d struct {
	e          *Engine
	x, w, b, r tensor.Tensor // [B, C, H, W], [O, C, KH, KW] (or OHIW), [O] or absent, [B, O, Ho, Wo] or absent
	g          convkern.Geom
	layout     ConvLayout // of w
	path       convPath
	budget     int // im2col floats per chunk; 0 means colBudget
	// turned: w is the weight of the convolution whose input gradient this
	// one computes, [C, O, KH, KW] (or [C, KH, O, KW]) in this one's
	// channels, read turned half a turn (Winograd path only).
	turned bool
}

func (f *conv2d) Operands() []mat.Tensor { return Operands(f.x, f.w, f.b, f.r) }

func (f *conv2d) Forward() (mat.Tensor, error) {
	g := f.g
	y := f.e.output(g.B * g.O * g.Ho * g.Wo) // [B, O, Ho, Wo]
	beta := f.e.initOutput(y, f.b, f.r, g.B, g.O, g.Ho*g.Wo)
	if f.path == pathWinograd { // reads the weight in either layout
		f.forwardWinograd(y, beta)
		return tensor.Leaf(y), nil
	}
	if f.path == pathDirect || f.path == pathBatched && f.layout == OIHW {
		// Whole weight rows as stored: float16 multiplied directly where
		// the backend can, with the batched path's columns in that order.
		w := f.e.readWeight(f.w)
		if f.path == pathDirect {
			f.forwardDirect(y, w, beta)
		} else {
			f.forwardBatched(y, w, beta, convkern.Im2colOIHW)
		}
		w.release()
		return tensor.Leaf(y), nil
	}
	w, release := f.weightOHIW()
	switch f.path {
	case pathRows:
		f.forwardRows(y, w, beta)
	case pathBatched:
		f.forwardBatched(y, weightRead{f32: w}, beta, convkern.Im2col)
	default:
		f.forwardIm2col(y, w, beta)
	}
	release()
	return tensor.Leaf(y), nil
}

// ConvOIHW reports whether Conv2DAdd(x, w, b, r, p) with p.Layout OIHW
// reads w as stored: 1x1 convolutions and small images (the batched path)
// multiply its rows in that order, and take a float16 w (a
// tensor.HalfHolder) without a float32 copy when e.HalfGemm; the Winograd
// path transforms its filters from either layout, so a float16 w costs
// it a plain conversion rather than one that reorders too. Any other
// convolution computes in the OHIW layout and is better given its weight
// that way.
func (e *Engine) ConvOIHW(x, w tensor.Tensor, p Conv2DParams) bool {
	if p.Layout != OIHW {
		return false
	}
	g, err := conv2dGeom(x, w, tensor.Tensor{}, p)
	if err != nil {
		return false
	}
	path := pathOf(g, e.winograd())
	return path == pathDirect || path == pathBatched || path == pathWinograd
}

func (f *conv2d) Backward(gy mat.Tensor) error {
	g, dy := f.g, tensor.Float32s(gy) // [B, O, Ho, Wo]
	if f.r.Valid() && f.r.RequiresGrad() {
		defer f.e.handOn(f.r, gy) // after the last read of dy
	}
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
	oihw := f.layout == OIHW && g.Taps() > 1 && (f.path == pathIm2col || f.path == pathBatched)
	if oihw || f.path == pathDirect {
		// These read the weight, and write its gradient, as stored (1x1:
		// the layouts agree; the im2col paths: columns in that order), so
		// nothing is reordered; where the backend multiplies float16, the
		// direct and batched paths read it without a float32 copy.
		var dw []float32 // [O, C, KH, KW]
		if needW {
			dw = f.e.scratchZero(f.w.Size())
		}
		if f.path == pathIm2col {
			w, release := f.w.Borrow()
			f.backwardIm2col(dy, w, dw, needX, convkern.Im2colOIHW, convkern.Col2imOIHW)
			release()
		} else {
			w := f.e.readWeight(f.w)
			if f.path == pathDirect {
				f.backwardDirect(dy, w, dw, needX)
			} else {
				f.backwardBatched(dy, w, dw, needX, convkern.Im2colOIHW, convkern.Col2imOIHW)
			}
			w.release()
		}
		if needW {
			f.e.accGrad(f.w, dw)
		}
		return nil
	}
	if f.path == pathWinograd && !needW && winoBackFits(g) {
		f.backwardWinograd(dy)
		return nil
	}
	w, release := f.weightOHIW()
	defer release()
	var dw []float32 // [O, KH, C, KW]
	if needW {
		dw = f.e.scratchZero(f.w.Size())
	}
	switch {
	case f.path == pathRows || f.path == pathWinograd:
		f.backwardRows(dy, w, dw, needX)
	case f.path == pathBatched:
		f.backwardBatched(dy, weightRead{f32: w}, dw, needX, convkern.Im2col, convkern.Col2im)
	default:
		f.backwardIm2col(dy, w, dw, needX, convkern.Im2col, convkern.Col2im)
	}
	if needW {
		if f.layout == OIHW && g.Taps() > 1 {
			oihw := f.e.scratch(len(dw)) // [O, C, KH, KW]
			convkern.FromOHIW(f.e.par, oihw, dw, g)
			f.e.release(dw)
			dw = oihw
		}
		f.e.accGrad(f.w, dw)
	}
	return nil
}

// weightOHIW returns the weight in the OHIW layout the kernels use: w
// itself when it is held so (or is 1x1, where the layouts agree), else a
// reordered scratch copy; release recycles it (and a borrowed weight, see
// tensor.Tensor.Borrow).
func (f *conv2d) weightOHIW() (w []float32, release func()) {
	src, done := f.w.Borrow()
	if f.layout == OHIW || f.g.Taps() == 1 {
		return src, done
	}
	w = f.e.scratch(f.w.Size())
	convkern.ToOHIW(f.e.par, w, src, f.g)
	done()
	return w, func() { f.e.release(w) }
}

// initOutput sets y [B, O, S] to the bias [O] broadcast plus the residual
// r [B, O, S], either of which may be absent, and returns the GEMM beta
// that keeps it: 1, or 0 when there is nothing to keep (y is left as is).
func (e *Engine) initOutput(y []float32, b, r tensor.Tensor, nb, o, s int) float32 {
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
	e.par(nb*o, grain/max(s, 1)+1, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			ys := y[row*s : (row+1)*s]
			switch {
			case res == nil:
				v := bias[row%o]
				for j := range ys {
					ys[j] = v
				}
			case bias == nil:
				copy(ys, res[row*s:])
			default:
				v, rs := bias[row%o], res[row*s:(row+1)*s]
				for j, u := range rs {
					ys[j] = u + v
				}
			}
		}
	})
	return 1
}

// Direct path: per image, y_b [O, HW] = w [O, C] x_b [C, HW].

func (f *conv2d) forwardDirect(y []float32, w weightRead, beta float32) {
	g, x := f.g, f.x.Data()
	hw := g.H * g.W
	for b := 0; b < g.B; b++ {
		f.e.gemmWA(false, false, g.O, hw, g.C, w, g.C, x[b*g.C*hw:], hw, beta, y[b*g.O*hw:], hw)
	}
}

func (f *conv2d) backwardDirect(dy []float32, w weightRead, dw []float32, needX bool) {
	g, x := f.g, f.x.Data()
	hw := g.H * g.W
	if dw != nil { // [O, C] = sum_b dy_b x_b^T
		for b := 0; b < g.B; b++ {
			f.e.B.Gemm(false, true, g.O, g.C, hw, 1, dy[b*g.O*hw:], hw, x[b*g.C*hw:], hw, 1, dw, g.C)
		}
	}
	if needX {
		dx := f.e.scratch(g.B * g.C * hw) // dx_b [C, HW] = w^T dy_b
		for b := 0; b < g.B; b++ {
			f.e.gemmWA(true, false, g.C, hw, g.O, w, g.C, dy[b*g.O*hw:], hw, 0, dx[b*g.C*hw:], hw)
		}
		f.e.accGrad(f.x, dx)
	}
}

// Im2col path: per image and chunk of output rows, y_b[:, rows] =
// w [O, KH*C*KW] col [KH*C*KW, rows*Wo].

// chunkRows is the number of output rows per im2col chunk.
func (f *conv2d) chunkRows() int {
	budget := f.budget
	if budget == 0 {
		budget = colBudget
	}
	return max(1, min(f.g.Ho, budget/(f.g.C*f.g.Taps()*f.g.Wo)))
}

func (f *conv2d) forwardIm2col(y, w []float32, beta float32) {
	g, x := f.g, f.x.Data()
	ckk, hw, ohw := g.C*g.Taps(), g.H*g.W, g.Ho*g.Wo
	rc := f.chunkRows()
	col := f.e.scratch(ckk * rc * g.Wo) // [KH*C*KW, rows*Wo]
	for b := 0; b < g.B; b++ {
		yb := y[b*g.O*ohw : (b+1)*g.O*ohw]
		for r0 := 0; r0 < g.Ho; r0 += rc {
			r1 := min(r0+rc, g.Ho)
			nc := (r1 - r0) * g.Wo
			convkern.Im2col(f.e.par, col, nc, x[b*g.C*hw:(b+1)*g.C*hw], g, r0, r1)
			f.e.B.Gemm(false, false, g.O, nc, ckk, 1, w, ckk, col, nc, beta, yb[r0*g.Wo:], ohw)
		}
	}
	f.e.release(col)
}

// Batched path: for a group of images, col [KH*C*KW, images*Ho*Wo] holds
// their im2col side by side, t [O, images*Ho*Wo] = w [O, KH*C*KW] col, and
// each y_b [O, Ho*Wo] takes t's columns of image b: the weight is packed
// once per group (as many images as colBudget holds), not once per image.
// Backward (backwardBatched) multiplies the same side-by-side columns.

// im2colFunc fills im2col columns in one of convkern's row orders.
type im2colFunc func(par convkern.Par, col []float32, ld int, x []float32, g convkern.Geom, r0, r1 int)

// col2imFunc adds column gradients back in the matching order.
type col2imFunc func(par convkern.Par, dx, col []float32, ld int, g convkern.Geom, r0, r1 int)

// groupSize is the number of images the batched path multiplies at once.
func (f *conv2d) groupSize() int {
	budget := f.budget
	if budget == 0 {
		budget = colBudget
	}
	g := f.g
	return max(1, min(g.B, budget/(g.C*g.Taps()*g.Ho*g.Wo)))
}

// groupColumns fills col [KH*C*KW, nb*Ho*Wo] with the im2col of images
// [b0, b0+nb), image i in columns [i*Ho*Wo, (i+1)*Ho*Wo).
func (f *conv2d) groupColumns(col []float32, b0, nb int, im2col im2colFunc) {
	g, x := f.g, f.x.Data()
	hw, ohw := g.H*g.W, g.Ho*g.Wo
	for i := range nb {
		im2col(f.e.par, col[i*ohw:], nb*ohw, x[(b0+i)*g.C*hw:(b0+i+1)*g.C*hw], g, 0, g.Ho)
	}
}

// groupOutputs copies between y's images [b0, b0+nb) (y_b [O, Ho*Wo]) and
// t [O, nb*Ho*Wo], whose columns of image i are [i*Ho*Wo, (i+1)*Ho*Wo):
// into t when toT, else back into y.
func (f *conv2d) groupOutputs(y, t []float32, b0, nb int, toT bool) {
	g := f.g
	ohw := g.Ho * g.Wo
	n, yg := nb*ohw, y[b0*g.O*ohw:(b0+nb)*g.O*ohw]
	f.e.par(nb*g.O, grain/ohw+1, func(lo, hi int) {
		for row := lo; row < hi; row++ { // row = b*O + o
			b, o := row/g.O, row%g.O
			yr, tr := yg[row*ohw:(row+1)*ohw], t[o*n+b*ohw:o*n+(b+1)*ohw]
			if toT {
				copy(tr, yr)
			} else {
				copy(yr, tr)
			}
		}
	})
}

func (f *conv2d) forwardBatched(y []float32, w weightRead, beta float32, im2col im2colFunc) {
	g := f.g
	ckk, ohw := g.C*g.Taps(), g.Ho*g.Wo
	group := f.groupSize()
	col := f.e.scratch(ckk * group * ohw) // [KH*C*KW, images*Ho*Wo]
	var t []float32                       // [O, images*Ho*Wo], when several
	if group > 1 {
		t = f.e.scratch(g.O * group * ohw)
	}
	for b0 := 0; b0 < g.B; b0 += group {
		nb := min(group, g.B-b0)
		n := nb * ohw
		f.groupColumns(col, b0, nb, im2col)
		if nb == 1 { // col and y_b are the GEMM's own operands
			f.e.gemmWA(false, false, g.O, n, ckk, w, ckk, col, n, beta, y[b0*g.O*ohw:], n)
			continue
		}
		// The GEMM adds to what y holds (bias, residual) in its own
		// rounding, as the other paths do.
		if beta != 0 {
			f.groupOutputs(y, t, b0, nb, true)
		}
		f.e.gemmWA(false, false, g.O, n, ckk, w, ckk, col, n, beta, t, n)
		f.groupOutputs(y, t, b0, nb, false)
	}
	f.e.release(col)
	if t != nil {
		f.e.release(t)
	}
}

// backwardBatched delivers the batched path's gradients a group of images
// at a time, on forwardBatched's side-by-side columns: with dyT
// [O, images*Ho*Wo] the group's output gradients, dw += dyT col^T and
// dcol = w^T dyT are one GEMM each (per image, the small maps' GEMMs
// would be a few columns wide), and each image's columns of dcol are
// added back into its dx. w and dw are in the row order of im2col.
func (f *conv2d) backwardBatched(dy []float32, w weightRead, dw []float32, needX bool, im2col im2colFunc, col2im col2imFunc) {
	g := f.g
	ckk, hw, ohw := g.C*g.Taps(), g.H*g.W, g.Ho*g.Wo
	group := f.groupSize()
	col := f.e.scratch(ckk * group * ohw) // [KH*C*KW, images*Ho*Wo]: inputs, then their gradients
	var dyT []float32                     // [O, images*Ho*Wo], when several
	if group > 1 {
		dyT = f.e.scratch(g.O * group * ohw)
	}
	var dx []float32
	if needX {
		dx = f.e.scratchZero(g.B * g.C * hw) // [B, C, H, W]
	}
	for b0 := 0; b0 < g.B; b0 += group {
		nb := min(group, g.B-b0)
		n := nb * ohw
		d := dy[b0*g.O*ohw:] // [O, n] as it stands for one image
		if nb > 1 {
			f.groupOutputs(dy, dyT, b0, nb, true)
			d = dyT
		}
		if dw != nil {
			f.groupColumns(col, b0, nb, im2col)
			f.e.B.Gemm(false, true, g.O, ckk, n, 1, d, n, col, n, 1, dw, ckk)
		}
		if needX {
			f.e.gemmWA(true, false, ckk, n, g.O, w, ckk, d, n, 0, col, n)
			for i := range nb {
				col2im(f.e.par, dx[(b0+i)*g.C*hw:(b0+i+1)*g.C*hw], col[i*ohw:], n, g, 0, g.Ho)
			}
		}
	}
	f.e.release(col)
	if dyT != nil {
		f.e.release(dyT)
	}
	if needX {
		f.e.accGrad(f.x, dx)
	}
}

// backwardIm2col delivers the gradients of the im2col path, with the
// columns (and w's and dw's rows) in im2col's and col2im's order.
func (f *conv2d) backwardIm2col(dy, w, dw []float32, needX bool, im2col im2colFunc, col2im col2imFunc) {
	g, x := f.g, f.x.Data()
	ckk, hw, ohw := g.C*g.Taps(), g.H*g.W, g.Ho*g.Wo
	rc := f.chunkRows()
	col := f.e.scratch(ckk * rc * g.Wo) // [KH*C*KW, rows*Wo]: inputs, then their gradients
	var dx []float32
	if needX {
		dx = f.e.scratchZero(g.B * g.C * hw) // [B, C, H, W]
	}
	for b := 0; b < g.B; b++ {
		for r0 := 0; r0 < g.Ho; r0 += rc {
			r1 := min(r0+rc, g.Ho)
			nc := (r1 - r0) * g.Wo
			dyc := dy[b*g.O*ohw+r0*g.Wo:] // [O, nc], row stride Ho*Wo
			if dw != nil {
				im2col(f.e.par, col, nc, x[b*g.C*hw:(b+1)*g.C*hw], g, r0, r1)
				f.e.B.Gemm(false, true, g.O, ckk, nc, 1, dyc, ohw, col, nc, 1, dw, ckk)
			}
			if needX {
				f.e.B.Gemm(true, false, ckk, nc, g.O, 1, w, ckk, dyc, ohw, 0, col, nc)
				col2im(f.e.par, dx[b*g.C*hw:(b+1)*g.C*hw], col, nc, g, r0, r1)
			}
		}
	}
	f.e.release(col)
	if needX {
		f.e.accGrad(f.x, dx)
	}
}

// Row path (stride 1): per image and chunk of output rows [r0, r1), col =
// im2col of the chunk's input rows over (c, kw) only [C*KW, (r1-r0+KH-1)*Wo],
// and y_b[:, rows] = sum over kh of w[:, kh] [O, C*KW] (row stride
// KH*C*KW) times col viewed kh rows down.

// rowChunk is the number of output rows per row-path chunk.
func (f *conv2d) rowChunk() int {
	budget := f.budget
	if budget == 0 {
		budget = colBudget
	}
	g := f.g
	return max(1, min(g.Ho, budget/(g.C*g.KW*g.Wo)-(g.KH-1)))
}

func (f *conv2d) forwardRows(y, w []float32, beta float32) {
	g, x := f.g, f.x.Data()
	ck, hw, ohw := g.C*g.KW, g.H*g.W, g.Ho*g.Wo
	lda := g.KH * ck
	rg, rc := g.RowGeom(), f.rowChunk()
	col := f.e.scratch(ck * (rc + g.KH - 1) * g.Wo) // [C*KW, rows*Wo]
	for b := 0; b < g.B; b++ {
		yb := y[b*g.O*ohw : (b+1)*g.O*ohw]
		for r0 := 0; r0 < g.Ho; r0 += rc {
			r1 := min(r0+rc, g.Ho)
			ld := (r1 - r0 + g.KH - 1) * g.Wo
			convkern.Im2col(f.e.par, col, ld, x[b*g.C*hw:(b+1)*g.C*hw], rg, r0, r1+g.KH-1)
			for kh := 0; kh < g.KH; kh++ {
				bk := float32(1)
				if kh == 0 {
					bk = beta
				}
				f.e.B.Gemm(false, false, g.O, (r1-r0)*g.Wo, ck, 1, w[kh*ck:], lda, col[kh*g.Wo:], ld,
					bk, yb[r0*g.Wo:], ohw)
			}
		}
	}
	f.e.release(col)
}

func (f *conv2d) backwardRows(dy, w, dw []float32, needX bool) {
	g, x := f.g, f.x.Data()
	ck, hw, ohw := g.C*g.KW, g.H*g.W, g.Ho*g.Wo
	lda := g.KH * ck
	rg, rc := g.RowGeom(), f.rowChunk()
	col := f.e.scratch(ck * (rc + g.KH - 1) * g.Wo) // [C*KW, rows*Wo]: inputs, then their gradients
	var dx []float32
	if needX {
		dx = f.e.scratchZero(g.B * g.C * hw) // [B, C, H, W]
	}
	for b := 0; b < g.B; b++ {
		for r0 := 0; r0 < g.Ho; r0 += rc {
			r1 := min(r0+rc, g.Ho)
			n, ld := (r1-r0)*g.Wo, (r1-r0+g.KH-1)*g.Wo
			dyc := dy[b*g.O*ohw+r0*g.Wo:] // [O, n], row stride Ho*Wo
			if dw != nil {
				convkern.Im2col(f.e.par, col, ld, x[b*g.C*hw:(b+1)*g.C*hw], rg, r0, r1+g.KH-1)
				for kh := 0; kh < g.KH; kh++ {
					f.e.B.Gemm(false, true, g.O, ck, n, 1, dyc, ohw, col[kh*g.Wo:], ld, 1, dw[kh*ck:], lda)
				}
			}
			if needX {
				clear(col[:ck*ld])
				for kh := 0; kh < g.KH; kh++ {
					f.e.B.Gemm(true, false, ck, n, g.O, 1, w[kh*ck:], lda, dyc, ohw, 1, col[kh*g.Wo:], ld)
				}
				convkern.Col2im(f.e.par, dx[b*g.C*hw:(b+1)*g.C*hw], col, ld, rg, r0, r1+g.KH-1)
			}
		}
	}
	f.e.release(col)
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
