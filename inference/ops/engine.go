// Package ops holds the neural-network operators of the runtime as spago
// ag operators: each has a Forward and, right under it, a Backward that
// computes input gradients always and weight gradients only when the weight
// requires them. One operator per file; the Engine methods are the API.
//
// Shapes are checked before any work: a mismatch is an error naming both
// shapes. When no operand requires gradients, an operator runs its forward
// pass directly and returns a constant leaf, so inference builds no graph
// and keeps no activations alive.
package ops

import (
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Engine runs operators on one backend. It is safe for concurrent use.
type Engine struct {
	B backend.Backend
}

// NewEngine returns an Engine on b.
func NewEngine(b backend.Backend) *Engine { return &Engine{B: b} }

// CPU returns an Engine on a fresh default CPU backend.
func CPU() *Engine { return NewEngine(cpu.New()) }

// function is an ag.AutoGradFunction whose output shape is known up front.
type function interface {
	ag.AutoGradFunction
}

// run executes fn: as an ag operator when any operand requires gradients,
// otherwise directly, returning a constant leaf.
func run(fn function, shape []int, needGrad bool) (tensor.Tensor, error) {
	if !needGrad {
		v, err := fn.Forward()
		if err != nil {
			return tensor.Tensor{}, err
		}
		return tensor.FromNode(v, shape...)
	}
	return tensor.FromNode(ag.NewOperator(fn).Run(), shape...)
}

// anyGrad reports whether any of the tensors requires gradients.
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

// shapeErr formats a shape mismatch naming both shapes.
func shapeErr(op string, a, b tensor.Tensor, why string) error {
	return fmt.Errorf("ops: %s: shapes %v and %v: %s", op, a.Shape(), b.Shape(), why)
}
