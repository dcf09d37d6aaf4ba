package ops

import (
	"math"
	"sync"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// LayerNorm normalises each row of x [..., C] over its last dimension and
// applies the affine gamma, beta [C]: y = (x - mean) / sqrt(var + eps) *
// gamma + beta, var biased (Ba et al., "Layer Normalization", 2016).
// gamma and beta may be zero Tensors (no affine).
func (e *Engine) LayerNorm(x, gamma, beta tensor.Tensor, eps float32) (tensor.Tensor, error) {
	if x.Rank() < 1 || x.Size() == 0 {
		return tensor.Tensor{}, dimsErr("layer_norm", x, "[..., C]", "want a non-empty tensor")
	}
	c := x.Dim(-1)
	if err := checkAffine("layer_norm", x, c, gamma, beta); err != nil {
		return tensor.Tensor{}, err
	}
	f := &layerNorm{e: e, x: x, gamma: gamma, beta: beta, eps: eps, rows: x.Size() / c, c: c}
	return e.run(f, x.Shape(), AnyGrad(x, gamma, beta))
}

type layerNorm struct {
	e              *Engine
	x, gamma, beta tensor.Tensor // [rows, C], [C], [C]
	eps            float32
	rows, c        int
	mean, rstd     []float64 // [rows], saved by Forward for Backward (only then)
}

func (f *layerNorm) Operands() []mat.Tensor { return Operands(f.x, f.gamma, f.beta) }

func (f *layerNorm) Forward() (mat.Tensor, error) {
	x, c := f.x.Data(), f.c
	y := f.e.output(len(x)) // [rows, C]
	// The moments are saved only for a graph's Backward.
	keep := AnyGrad(f.x, f.gamma, f.beta)
	if keep {
		f.mean, f.rstd = make([]float64, f.rows), make([]float64, f.rows)
	}
	gamma, beta := affine(f.gamma, f.beta)
	f.e.par(f.rows, grain/c+1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xs, ys := x[r*c:(r+1)*c], y[r*c:(r+1)*c]
			mean, rstd := moments(xs, float64(f.eps))
			if keep {
				f.mean[r], f.rstd[r] = mean, rstd
			}
			m32, r32 := float32(mean), float32(rstd)
			exact := math.Abs(mean*rstd) > meanRatioMax
			for j, v := range xs {
				var h float32 // xhat
				if exact {
					h = float32((float64(v) - mean) * rstd)
				} else {
					h = (v - m32) * r32
				}
				if gamma != nil {
					h *= gamma[j]
				}
				if beta != nil {
					h += beta[j]
				}
				ys[j] = h
			}
		}
	})
	return tensor.Leaf(y), nil
}

func (f *layerNorm) Backward(gy mat.Tensor) error {
	x, dy, c := f.x.Data(), tensor.Float32s(gy), f.c
	needX := f.x.RequiresGrad()
	needGamma := f.gamma.Valid() && f.gamma.RequiresGrad()
	needBeta := f.beta.Valid() && f.beta.RequiresGrad()
	gamma, _ := affine(f.gamma, f.beta)
	var dx []float32
	if needX {
		dx = f.e.scratch(len(x)) // [rows, C]
	}
	var dg, db []float64 // [C], merged from per-chunk partial sums
	var mu sync.Mutex
	if needGamma || needBeta {
		dg, db = make([]float64, c), make([]float64, c)
	}
	f.e.par(f.rows, grain/c+1, func(lo, hi int) {
		var pg, pb []float64
		if dg != nil {
			pg, pb = make([]float64, c), make([]float64, c)
		}
		for r := lo; r < hi; r++ {
			xs, dys := x[r*c:(r+1)*c], dy[r*c:(r+1)*c]
			mean, rstd := f.mean[r], f.rstd[r]
			var s1, s2 float64 // sum dxhat, sum dxhat*xhat
			for j, v := range xs {
				h, d := (float64(v)-mean)*rstd, float64(dys[j])
				if pg != nil {
					pg[j] += d * h
					pb[j] += d
				}
				if gamma != nil {
					d *= float64(gamma[j])
				}
				s1 += d
				s2 += d * h
			}
			if dx == nil {
				continue
			}
			m1, m2 := s1/float64(c), s2/float64(c)
			dxs := dx[r*c : (r+1)*c]
			for j, v := range xs {
				h, d := (float64(v)-mean)*rstd, float64(dys[j])
				if gamma != nil {
					d *= float64(gamma[j])
				}
				dxs[j] = float32(rstd * (d - m1 - h*m2))
			}
		}
		if pg != nil {
			mu.Lock()
			for j := range pg {
				dg[j] += pg[j]
				db[j] += pb[j]
			}
			mu.Unlock()
		}
	})
	if dx != nil {
		f.e.accGrad(f.x, dx)
	}
	if needGamma {
		f.e.accGrad(f.gamma, narrow(f.e, dg))
	}
	if needBeta {
		f.e.accGrad(f.beta, narrow(f.e, db))
	}
	return nil
}

// narrow converts v to a scratch float32 buffer.
func narrow(e *Engine, v []float64) []float32 {
	out := e.scratch(len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
