package edit

import (
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// run executes fn: as an autograd operator when any operand requires
// gradients, otherwise directly, returning a constant leaf (inference
// builds no graph).
func run(fn ag.AutoGradFunction, shape []int, needGrad bool) (tensor.Tensor, error) {
	if !needGrad {
		v, err := fn.Forward()
		if err != nil {
			return tensor.Tensor{}, err
		}
		return tensor.FromNode(v, shape...)
	}
	return tensor.FromNode(ag.NewOperator(fn).Run(), shape...)
}

// anyGrad reports whether any valid tensor requires gradients.
func anyGrad(ts ...tensor.Tensor) bool {
	for _, t := range ts {
		if t.Valid() && t.RequiresGrad() {
			return true
		}
	}
	return false
}

// operands lists the nodes of the valid tensors.
func operands(ts ...tensor.Tensor) []mat.Tensor {
	out := make([]mat.Tensor, 0, len(ts))
	for _, t := range ts {
		if t.Valid() {
			out = append(out, t.Node())
		}
	}
	return out
}

// dot64 is a·b accumulated in float64.
func dot64(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s
}

// checkContext checks that x is a [B, T, D] context.
func checkContext(op string, x tensor.Tensor, d int) error {
	if !x.Valid() || x.Rank() != 3 || x.Dim(2) != d || x.Size() == 0 {
		return fmt.Errorf("edit: %s: context %v, want [B, T, %d]", op, x, d)
	}
	return nil
}
