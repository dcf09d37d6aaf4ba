package evaldefault

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// crossEntropy is the mean softmax cross-entropy of logits [B, K] against
// the class labels [B], a [1] tensor:
//
//	L = -1/B Σ_b log softmax(z_b)[y_b]
func crossEntropy(logits tensor.Tensor, labels []int) (tensor.Tensor, error) {
	if !logits.Valid() || logits.Rank() != 2 || logits.Dim(0) != len(labels) || len(labels) == 0 {
		return tensor.Tensor{}, fmt.Errorf("evaldefault: cross-entropy: logits %v and %d labels", logits, len(labels))
	}
	k := logits.Dim(1)
	for _, y := range labels {
		if y < 0 || y >= k {
			return tensor.Tensor{}, fmt.Errorf("evaldefault: cross-entropy: label %d outside 0..%d", y, k-1)
		}
	}
	return ops.Run(&xent{z: logits, y: labels, k: k}, []int{1}, logits.RequiresGrad())
}

type xent struct {
	z tensor.Tensor // [B, K]
	y []int         // [B]
	k int
	p []float64 // [B, K] softmax, saved for Backward
}

func (f *xent) Operands() []mat.Tensor { return ops.Operands(f.z) }

func (f *xent) Forward() (mat.Tensor, error) {
	z := f.z.Data()
	b := len(f.y)
	f.p = make([]float64, len(z))
	var loss float64
	for i := range b {
		row, p := z[i*f.k:(i+1)*f.k], f.p[i*f.k:(i+1)*f.k]
		m := math.Inf(-1)
		for _, v := range row {
			m = max(m, float64(v))
		}
		var s float64
		for j, v := range row {
			p[j] = math.Exp(float64(v) - m)
			s += p[j]
		}
		for j := range p {
			p[j] /= s
		}
		loss -= float64(row[f.y[i]]) - m - math.Log(s)
	}
	return tensor.Leaf([]float32{float32(loss / float64(b))}), nil
}

// Backward: dL/dz_bj = (softmax(z_b)_j - [j = y_b]) / B.
func (f *xent) Backward(gy mat.Tensor) error {
	if !f.z.RequiresGrad() {
		return nil
	}
	b := len(f.y)
	g := float64(tensor.Float32s(gy)[0]) / float64(b)
	gz := make([]float32, len(f.p))
	for i := range b {
		for j := range f.k {
			v := f.p[i*f.k+j]
			if j == f.y[i] {
				v--
			}
			gz[i*f.k+j] = float32(g * v)
		}
	}
	tensor.AccGrad(f.z.Node(), gz)
	return nil
}
