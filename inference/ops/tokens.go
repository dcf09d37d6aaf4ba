package ops

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// ToTokens turns an image into a token sequence: x [B, C, H, W] ->
// [B, H*W, C] (einops "b c h w -> b (h w) c"), pixels in row-major order.
func (e *Engine) ToTokens(x tensor.Tensor) (tensor.Tensor, error) {
	if x.Rank() != 4 {
		return tensor.Tensor{}, dimsErr("to_tokens", x, "[B, C, H, W]", "want rank 4")
	}
	b, c, hw := x.Dim(0), x.Dim(1), x.Dim(2)*x.Dim(3)
	return e.run(&transpose{e: e, x: x, b: b, rows: c, cols: hw}, []int{b, hw, c}, AnyGrad(x))
}

// FromTokens is the inverse of ToTokens: x [B, H*W, C] -> [B, C, H, W].
func (e *Engine) FromTokens(x tensor.Tensor, h, w int) (tensor.Tensor, error) {
	if x.Rank() != 3 || h < 1 || w < 1 || x.Dim(1) != h*w {
		return tensor.Tensor{}, dimsErr("from_tokens", x, fmt.Sprintf("h=%d w=%d", h, w), "want [B, h*w, C]")
	}
	b, c := x.Dim(0), x.Dim(2)
	return e.run(&transpose{e: e, x: x, b: b, rows: h * w, cols: c}, []int{b, c, h, w}, AnyGrad(x))
}

// transpose swaps the last two dimensions of x [B, rows, cols].
type transpose struct {
	e             *Engine
	x             tensor.Tensor // [B, rows, cols]
	b, rows, cols int
}

func (f *transpose) Operands() []mat.Tensor { return Operands(f.x) }

func (f *transpose) Forward() (mat.Tensor, error) {
	y := f.e.output(f.x.Size()) // [B, cols, rows]
	f.e.transposeInto(y, f.x.Data(), f.b, f.rows, f.cols)
	return tensor.Leaf(y), nil
}

func (f *transpose) Backward(gy mat.Tensor) error {
	if f.x.RequiresGrad() {
		dx := f.e.scratch(f.x.Size()) // [B, rows, cols]
		f.e.transposeInto(dx, tensor.Float32s(gy), f.b, f.cols, f.rows)
		f.e.accGrad(f.x, dx)
	}
	return nil
}

// tile is the edge of the square blocks transposeInto moves at a time.
const tile = 32

// transposeInto writes dst [B, cols, rows] = src [B, rows, cols] transposed,
// in tile x tile blocks, parallel over blocks of destination rows.
func (e *Engine) transposeInto(dst, src []float32, b, rows, cols int) {
	colTiles := (cols + tile - 1) / tile
	e.par(b*colTiles, grain/(tile*rows+1)+1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			n, j0 := t/colTiles, t%colTiles*tile
			j1 := min(j0+tile, cols)
			s, d := src[n*rows*cols:(n+1)*rows*cols], dst[n*rows*cols:(n+1)*rows*cols]
			for i0 := 0; i0 < rows; i0 += tile {
				i1 := min(i0+tile, rows)
				for j := j0; j < j1; j++ {
					dr := d[j*rows : (j+1)*rows]
					for i := i0; i < i1; i++ {
						dr[i] = s[i*cols+j]
					}
				}
			}
		}
	})
}
