package ops

import (
	"fmt"

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
	return e.run(f, []int{x.Dim(0), x.Dim(1), 2 * x.Dim(2), 2 * x.Dim(3)}, AnyGrad(x))
}

type upsample2x struct {
	e            *Engine
	x            tensor.Tensor // [B*C, H, W]
	planes, h, w int
}

func (f *upsample2x) Operands() []mat.Tensor { return Operands(f.x) }

func (f *upsample2x) Forward() (mat.Tensor, error) {
	x, h, w := f.x.Data(), f.h, f.w
	y := f.e.output(4 * len(x)) // [B*C, 2H, 2W]
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

// UpsampleNearest resizes x [B, C, H, W] to [B, C, h, w] by nearest
// neighbour, as torch's F.interpolate(x, size=(h, w), mode="nearest"):
// output pixel (i, j) copies input pixel (floor(i*H/h), floor(j*W/w)).
// With h = 2H and w = 2W it is Upsample2x. The UNet uses it to bring an
// upsampled feature map to its skip connection's size when a side was odd.
func (e *Engine) UpsampleNearest(x tensor.Tensor, h, w int) (tensor.Tensor, error) {
	if x.Rank() != 4 || x.Size() == 0 || h < 1 || w < 1 {
		return tensor.Tensor{}, dimsErr("upsample_nearest", x, fmt.Sprintf("size %dx%d", h, w), "want a non-empty [B, C, H, W] and a positive size")
	}
	if h == 2*x.Dim(2) && w == 2*x.Dim(3) {
		return e.Upsample2x(x)
	}
	f := &upsampleNearest{e: e, x: x, planes: x.Dim(0) * x.Dim(1), hi: x.Dim(2), wi: x.Dim(3), ho: h, wo: w}
	return e.run(f, []int{x.Dim(0), x.Dim(1), h, w}, AnyGrad(x))
}

type upsampleNearest struct {
	e              *Engine
	x              tensor.Tensor // [B*C, Hi, Wi]
	planes, hi, wi int
	ho, wo         int
}

func (f *upsampleNearest) Operands() []mat.Tensor { return Operands(f.x) }

// cols returns the source column of each output column.
func (f *upsampleNearest) cols() []int {
	src := make([]int, f.wo)
	for j := range src {
		src[j] = j * f.wi / f.wo
	}
	return src
}

func (f *upsampleNearest) Forward() (mat.Tensor, error) {
	x, cols := f.x.Data(), f.cols()
	y := f.e.output(f.planes * f.ho * f.wo) // [B*C, Ho, Wo]
	f.e.par(f.planes*f.ho, grain/(f.wo+1)+1, func(lo, hi int) {
		for pr := lo; pr < hi; pr++ { // one output row
			p, i := pr/f.ho, pr%f.ho
			src := x[(p*f.hi+i*f.hi/f.ho)*f.wi:][:f.wi]
			dst := y[pr*f.wo : (pr+1)*f.wo]
			for j, c := range cols {
				dst[j] = src[c]
			}
		}
	})
	return tensor.Leaf(y), nil
}

func (f *upsampleNearest) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	dy, cols := tensor.Float32s(gy), f.cols()
	dx := f.e.scratchZero(f.x.Size()) // [B*C, Hi, Wi]
	f.e.par(f.planes, grain/(f.ho*f.wo+1)+1, func(lo, hi int) {
		for p := lo; p < hi; p++ { // one plane: no two tasks share an input pixel
			for i := 0; i < f.ho; i++ {
				d := dx[(p*f.hi+i*f.hi/f.ho)*f.wi:][:f.wi]
				for j, g := range dy[(p*f.ho+i)*f.wo : (p*f.ho+i+1)*f.wo] {
					d[cols[j]] += g
				}
			}
		}
	})
	f.e.accGrad(f.x, dx)
	return nil
}
