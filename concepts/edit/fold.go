package edit

import (
	"fmt"
	"github.com/perfusion-studio/perfusion/inference/ops"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Fold returns x′ = x − Σ_k dirs_k (weights_k·x) for every encoding of x
// [B, T, D]: the part of each encoding along the concepts' target inputs
// removed. With one concept, dirs = {i*} and weights = {u/E} give spec
// §3.2's e′_n = e_n − s_n i*; see Removal for several. dirs and weights are
// K pairs of [D] constants; the gradient flows to x only:
// dx = dx′ − Σ_k weights_k (dirs_k·dx′).
func Fold(x tensor.Tensor, dirs, weights [][]float32) (tensor.Tensor, error) {
	if !x.Valid() || x.Rank() != 3 {
		return tensor.Tensor{}, fmt.Errorf("edit: fold: context %v, want [B, T, D]", x)
	}
	d := x.Dim(2)
	if len(dirs) != len(weights) {
		return tensor.Tensor{}, fmt.Errorf("edit: fold: %d directions and %d weights", len(dirs), len(weights))
	}
	for k := range dirs {
		if len(dirs[k]) != d || len(weights[k]) != d {
			return tensor.Tensor{}, fmt.Errorf("edit: fold: pair %d has %d and %d values, want %d (the context width)", k, len(dirs[k]), len(weights[k]), d)
		}
	}
	f := &fold{x: x, dirs: dirs, weights: weights, rows: x.Size() / max(d, 1), d: d}
	return ops.Run(f, x.Shape(), ops.AnyGrad(x))
}

type fold struct {
	x             tensor.Tensor // [B*T, D]
	dirs, weights [][]float32   // K x [D]
	rows, d       int
}

func (f *fold) Operands() []mat.Tensor { return ops.Operands(f.x) }

func (f *fold) Forward() (mat.Tensor, error) {
	y := append([]float32(nil), f.x.Data()...) // [B*T, D]
	f.remove(y, f.weights, f.dirs)
	return tensor.Leaf(y), nil
}

func (f *fold) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	dx := append([]float32(nil), tensor.Float32s(gy)...) // [B*T, D]
	f.remove(dx, f.dirs, f.weights)                      // the transposed map
	tensor.AccGrad(f.x.Node(), dx)
	return nil
}

// remove sets every row r of v [rows, D] to r − Σ_k out_k (in_k·r). The
// coefficients of a row are all taken before it changes.
func (f *fold) remove(v []float32, in, out [][]float32) {
	c := make([]float64, len(in))
	for r := range f.rows {
		row := v[r*f.d : (r+1)*f.d]
		for k := range in {
			c[k] = dot64(in[k], row)
		}
		for k, o := range out {
			ck := float32(c[k])
			for j := range row {
				row[j] -= ck * o[j]
			}
		}
	}
}
