package edit

import (
	"fmt"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"math"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Gate returns g = σ((x·w − β)/τ) [B, T] for every encoding of x [B, T, D]:
// with w = C⁻¹i*/(i*ᵀC⁻¹i*), x·w is the C⁻¹-similarity s_n of spec §3.2
// (1 at i*) and g the concept's gate. w, β and τ (> 0) are constants; the
// gradient flows to x: dx = dg·g(1−g)/τ·w.
func Gate(x tensor.Tensor, w []float32, beta, tau float32) (tensor.Tensor, error) {
	if !x.Valid() || x.Rank() != 3 || x.Dim(2) != len(w) {
		return tensor.Tensor{}, fmt.Errorf("edit: gate: context %v and weight of %d values, want [B, T, %d]", x, len(w), len(w))
	}
	if !(tau > 0) || math.IsInf(float64(tau), 0) || math.IsNaN(float64(beta)) || math.IsInf(float64(beta), 0) {
		return tensor.Tensor{}, fmt.Errorf("edit: gate: beta %g, tau %g: want a finite beta and a finite tau > 0", beta, tau)
	}
	f := &gate{x: x, w: w, beta: float64(beta), tau: float64(tau), rows: x.Dim(0) * x.Dim(1), d: len(w)}
	return ops.Run(f, []int{x.Dim(0), x.Dim(1)}, ops.AnyGrad(x))
}

type gate struct {
	x         tensor.Tensor // [B*T, D]
	w         []float32     // [D]
	beta, tau float64
	rows, d   int
	g         []float32 // [B*T] the forward output, for Backward
}

func (f *gate) Operands() []mat.Tensor { return ops.Operands(f.x) }

func (f *gate) Forward() (mat.Tensor, error) {
	x := f.x.Data()
	g := make([]float32, f.rows) // [B*T]
	for r := range g {
		s := dot64(f.w, x[r*f.d:(r+1)*f.d])
		g[r] = float32(sigmoid((s - f.beta) / f.tau))
	}
	f.g = g
	return tensor.Leaf(g), nil
}

func (f *gate) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	dg := tensor.Float32s(gy)         // [B*T]
	dx := make([]float32, f.rows*f.d) // [B*T, D]
	for r, gr := range f.g {
		c := float32(float64(dg[r]) * float64(gr) * (1 - float64(gr)) / f.tau)
		row := dx[r*f.d : (r+1)*f.d]
		for j, wj := range f.w {
			row[j] = c * wj
		}
	}
	tensor.AccGrad(f.x.Node(), dx)
	return nil
}

// sigmoid is the logistic function, stable for large |z|.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	ez := math.Exp(z)
	return ez / (1 + ez)
}
