package blocks

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Recompute is activation recomputation ("gradient checkpointing", Chen
// et al., "Training Deep Nets with Sublinear Memory Cost", 2016) for one
// forward and backward pass: Checkpoint runs a block forward without
// keeping its graph, holding only its inputs and output, and runs it again
// with the graph during the backward pass to backpropagate into its
// inputs. Memory falls from every block's activations to one block's at a
// time, for about one more forward pass of compute.
//
// A failure inside a recomputation cannot stop spago's backward pass (its
// Backward errors end the process), so it is recorded: check Err after
// ag.Backward. The zero value is ready to use; a Recompute serves one
// pass (its checkpoints may run their backward concurrently).
type Recompute struct {
	// Spare, when set, lends the buffers of the weights that
	// recomputations hold (see CheckpointOn), so that a training run's
	// passes reuse them from pass to pass; nil: the Recompute's own,
	// reused within its pass only.
	Spare *HeldBuffers

	mu    sync.Mutex
	err   error
	spare HeldBuffers // used when Spare is nil
}

// held is where the held weights' buffers come from.
func (rc *Recompute) held() *HeldBuffers {
	if rc.Spare != nil {
		return rc.Spare
	}
	return &rc.spare
}

// Err reports the first recomputation that failed during backward (the
// gradients are then incomplete) or nil.
func (rc *Recompute) Err() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.err
}

func (rc *Recompute) fail(err error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.err == nil {
		rc.err = err
	}
}

// Checkpoint returns fn(in). fn must compute the same function of its
// inputs each time it is called (it is called once now, on constant copies
// of in, and once more during backward when the result takes part in a
// gradient, on copies of in that require gradients where in does); it may
// close over constants, never over tensors that require gradients (their
// gradients would be lost: pass them in in). When no input requires
// gradients it runs fn once, plainly.
func (rc *Recompute) Checkpoint(fn func(in []tensor.Tensor) (tensor.Tensor, error), in ...tensor.Tensor) (tensor.Tensor, error) {
	return rc.CheckpointOn(nil, nil, func(_ *ops.Engine, in []tensor.Tensor) (tensor.Tensor, error) { return fn(in) }, in...)
}

// CheckpointOn is Checkpoint for a block whose layers run on e and hold
// float16 weights of pool: fn runs them on the engine it is given. The
// first call gets e; the recomputation gets the engine of a WeightScope
// of pool (WeightPool.Hold), so each weight is converted once for the
// block's recomputation and backward pass together (not once for each),
// and the float32 copies are dropped as soon as the block's backward pass
// is done. Their buffers are reused from block to block for the life of
// rc (one pass) or of rc.Spare, which keep at most one block's weights in
// float32. A
// nil pool or e gives Checkpoint's behaviour, with e passed through.
func (rc *Recompute) CheckpointOn(e *ops.Engine, pool *WeightPool, fn func(e *ops.Engine, in []tensor.Tensor) (tensor.Tensor, error), in ...tensor.Tensor) (tensor.Tensor, error) {
	need := false
	for i, t := range in {
		if !t.Valid() {
			return tensor.Tensor{}, fmt.Errorf("blocks: checkpoint: input %d is the zero Tensor", i)
		}
		need = need || t.RequiresGrad()
	}
	if !need {
		return fn(e, in)
	}
	detached := make([]tensor.Tensor, len(in))
	for i, t := range in {
		detached[i] = t.Detach()
	}
	y, err := fn(e, detached)
	if err != nil {
		return tensor.Tensor{}, err
	}
	if !y.Valid() {
		return tensor.Tensor{}, errors.New("blocks: checkpoint: the block returned the zero Tensor")
	}
	c := &checkpointFn{rc: rc, e: e, pool: pool, fn: fn, in: in, out: append([]float32(nil), y.Data()...), shape: y.Shape()}
	return tensor.FromNode(ag.NewOperator(c).Run(), c.shape...)
}

// checkpoint is the operator of one Checkpoint call.
type checkpointFn struct {
	rc    *Recompute
	e     *ops.Engine // the block's engine, or nil
	pool  *WeightPool // the pool whose weights a recomputation holds, or nil
	fn    func(*ops.Engine, []tensor.Tensor) (tensor.Tensor, error)
	in    []tensor.Tensor
	out   []float32 // the block's output, computed without a graph
	shape []int
}

func (c *checkpointFn) Operands() []mat.Tensor {
	ops := make([]mat.Tensor, len(c.in))
	for i, t := range c.in {
		ops[i] = t.Node()
	}
	return ops
}

func (c *checkpointFn) Forward() (mat.Tensor, error) { return tensor.Leaf(c.out), nil }

// Backward recomputes the block on fresh leaves (parameters where the
// input requires gradients), backpropagates gy through that graph and
// hands each input its gradient. Every input that requires gradients gets
// one, zeros where the recomputation failed: the backward pass waits for
// it.
func (c *checkpointFn) Backward(gy mat.Tensor) error {
	grads, err := c.recompute(tensor.Float32s(gy))
	if err != nil {
		c.rc.fail(fmt.Errorf("blocks: checkpoint: recompute: %w", err))
	}
	for i, t := range c.in {
		if !t.RequiresGrad() {
			continue
		}
		g := grads[i]
		if g == nil {
			g = make([]float32, t.Size())
		}
		tensor.AccGrad(t.Node(), g)
	}
	return nil
}

// recompute returns the gradient of each input (nil where none reached it
// or it needs none).
func (c *checkpointFn) recompute(gy []float32) ([][]float32, error) {
	grads := make([][]float32, len(c.in))
	leaves := make([]tensor.Tensor, len(c.in))
	for i, t := range c.in {
		if !t.RequiresGrad() {
			leaves[i] = t.Detach()
			continue
		}
		p, err := tensor.NewParam(t.Data(), t.Shape()...)
		if err != nil {
			return grads, err
		}
		leaves[i] = p
	}
	e := c.e
	if c.pool != nil && e != nil {
		scope := c.pool.Hold(e, c.rc.held())
		defer scope.Close() // after the block's backward pass below
		e = scope.Engine()
	}
	y, err := c.fn(e, leaves)
	if err != nil {
		return grads, err
	}
	if !y.Valid() || !tensor.SameShape(y.Shape(), c.shape) {
		return grads, fmt.Errorf("the block returned %v, first %v", y, c.shape)
	}
	if !y.RequiresGrad() {
		return grads, nil // the output does not depend on the inputs that need gradients
	}
	tensor.AccGrad(y.Node(), gy)
	if err := ag.Backward(y.Node()); err != nil {
		return grads, err
	}
	for i, t := range c.in {
		if t.RequiresGrad() {
			grads[i] = leaves[i].Grad()
		}
	}
	return grads, nil
}
