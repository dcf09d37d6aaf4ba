package train

import (
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// weightedMSE returns scale · mean_i w_i (pred_i − target_i)² as a scalar
// tensor [1] whose gradient flows to pred (an ag operator when pred
// requires gradients). w (nil: all ones) has one weight per element of
// pred; the ε-prediction loss of spec §6.3 with the mask weighting of
// §6.4. scale lets gradient accumulation average over the full batch.
func weightedMSE(pred tensor.Tensor, target, w []float32, scale float64) (tensor.Tensor, error) {
	if !pred.Valid() || pred.Size() == 0 || len(target) != pred.Size() || w != nil && len(w) != pred.Size() {
		return tensor.Tensor{}, fmt.Errorf("train: loss: prediction %v, %d targets, %d weights", pred, len(target), len(w))
	}
	f := &mseFn{pred: pred, target: target, w: w, scale: scale}
	if !pred.RequiresGrad() {
		v, err := f.Forward()
		if err != nil {
			return tensor.Tensor{}, err
		}
		return tensor.FromNode(v, 1)
	}
	return tensor.FromNode(ag.NewOperator(f).Run(), 1)
}

type mseFn struct {
	pred      tensor.Tensor
	target, w []float32
	scale     float64
}

func (f *mseFn) Operands() []mat.Tensor { return []mat.Tensor{f.pred.Node()} }

func (f *mseFn) Forward() (mat.Tensor, error) {
	p := f.pred.Data()
	var s float64
	for i, x := range p {
		d := float64(x) - float64(f.target[i])
		if f.w != nil {
			s += float64(f.w[i]) * d * d
		} else {
			s += d * d
		}
	}
	return tensor.Leaf([]float32{float32(f.scale * s / float64(len(p)))}), nil
}

func (f *mseFn) Backward(gy mat.Tensor) error {
	if !f.pred.RequiresGrad() {
		return nil
	}
	p := f.pred.Data()
	c := float64(tensor.Float32s(gy)[0]) * 2 * f.scale / float64(len(p))
	g := make([]float32, len(p))
	for i, x := range p {
		d := float64(x) - float64(f.target[i])
		if f.w != nil {
			d *= float64(f.w[i])
		}
		g[i] = float32(c * d)
	}
	tensor.AccGrad(f.pred.Node(), g)
	return nil
}
