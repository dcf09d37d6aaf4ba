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
	"github.com/perfusion-studio/perfusion/inference/ops/internal/bufpool"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Engine runs operators on one backend. It is safe for concurrent use.
// Create it with NewEngine; an Engine literal works too but allocates its
// scratch buffers on every call.
type Engine struct {
	B backend.Backend

	// NoWinograd turns the Winograd convolution path off (it is on where B
	// implements backend.APacker), so that every convolution does all of
	// its direct-form multiplications (what FLOP formulas count, and a
	// baseline for comparisons). Set it before use.
	NoWinograd bool

	pool *bufpool.Pool // scratch buffers reused across calls
	wino *winoArena    // the Winograd path's working memory, shared by copies
	out  Outputs       // lends result buffers (see WithOutputs), or nil
}

// NewEngine returns an Engine on b.
func NewEngine(b backend.Backend) *Engine {
	return &Engine{B: b, pool: new(bufpool.Pool), wino: new(winoArena)}
}

// CPU returns an Engine on a fresh default CPU backend.
func CPU() *Engine { return NewEngine(cpu.New()) }

// Run executes fn, whose output has the given shape: as a spago autograd
// operator when needGrad (some operand requires gradients), otherwise
// directly, returning a constant leaf, so inference builds no graph. It is
// how every operator of this package runs, and how operators defined
// elsewhere (concepts/edit) join the same graphs.
func Run(fn ag.AutoGradFunction, shape []int, needGrad bool) (tensor.Tensor, error) {
	if !needGrad {
		v, err := fn.Forward()
		if err != nil {
			return tensor.Tensor{}, err
		}
		return tensor.FromNode(v, shape...)
	}
	return tensor.FromNode(ag.NewOperator(&dropGrad{AutoGradFunction: fn}).Run(), shape...)
}

// run is Run for this package's operators: the gradient an operator drops
// after its backward pass goes back to e's scratch buffers, so the next
// gradients of the pass are written into memory already mapped.
func (e *Engine) run(fn ag.AutoGradFunction, shape []int, needGrad bool) (tensor.Tensor, error) {
	if !needGrad {
		return Run(fn, shape, false)
	}
	return tensor.FromNode(ag.NewOperator(&dropGrad{AutoGradFunction: fn, e: e}).Run(), shape...)
}

// dropGrad runs an operator and, once its backward pass has handed the
// gradient of its result on to its operands, drops that gradient: spago
// keeps every node's gradient until the graph is gone, which doubles what
// a training pass holds at its peak (each activation and, by the end of
// the backward pass, a gradient of the same size), while nothing reads an
// operator's own gradient after its backward pass (the gradients callers
// read are those of leaves: parameters and inputs).
type dropGrad struct {
	ag.AutoGradFunction
	out mat.Tensor // the result, whose gradient Backward drops
	e   *Engine    // takes the dropped gradient's buffer; nil: the collector does
}

func (d *dropGrad) Forward() (mat.Tensor, error) {
	v, err := d.AutoGradFunction.Forward()
	d.out = v
	return v, err
}

func (d *dropGrad) Backward(gy mat.Tensor) error {
	own, ok := gy.(*mat.Dense[float32])
	if !ok || d.out == nil || own != d.out.Grad() {
		return d.AutoGradFunction.Backward(gy)
	}
	// The gradient belongs to the result alone: a buffer an operator
	// handed over (accGrad) or spago's copy of one delivered otherwise.
	// The operator may pass it on whole to an operand (handOn).
	og := &ownGrad{Dense: own}
	err := d.AutoGradFunction.Backward(og)
	if og.given {
		d.out.ZeroGrad() // the buffer is the operand's gradient now
		return err
	}
	if g, ok := d.out.Grad().(*mat.Dense[float32]); ok && d.e != nil {
		d.out.ZeroGrad()
		d.e.release(tensor.Float32s(g))
		return err
	}
	d.out.ZeroGrad()
	return err
}

// AnyGrad reports whether any of the valid tensors requires gradients.
func AnyGrad(ts ...tensor.Tensor) bool {
	for _, t := range ts {
		if t.Valid() && t.RequiresGrad() {
			return true
		}
	}
	return false
}

// Operands lists the nodes of the valid tensors, for an operator's
// Operands method.
func Operands(ts ...tensor.Tensor) []mat.Tensor {
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

// dimsErr formats a mismatch between a tensor and expected dimensions.
func dimsErr(op string, a tensor.Tensor, want string, why string) error {
	return fmt.Errorf("ops: %s: shape %v and %s: %s", op, a.Shape(), want, why)
}

// scratch returns a pooled buffer of n floats with unspecified contents.
// Hand it back with release once nothing refers to it.
func (e *Engine) scratch(n int) []float32 { return e.pool.Get(n) }

// scratchZero returns a pooled, zeroed buffer of n floats.
func (e *Engine) scratchZero(n int) []float32 { return e.pool.GetZero(n) }

// release returns scratch buffers to the pool.
func (e *Engine) release(bufs ...[]float32) {
	for _, b := range bufs {
		e.pool.Put(b)
	}
}

// grain is the smallest amount of elementwise work worth a goroutine.
const grain = 1 << 14

// par runs fn over [0, n) in at most Threads() contiguous chunks of at
// least minPer items each; small ranges run inline, skipping goroutines.
func (e *Engine) par(n, minPer int, fn func(lo, hi int)) {
	chunks := min(e.B.Threads(), n/max(minPer, 1))
	if chunks <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	e.B.Parallel(chunks, func(c0, c1 int) {
		fn(c0*n/chunks, c1*n/chunks)
	})
}

// ownGrad is an operator's output gradient as dropGrad hands it to the
// operator's Backward: a buffer only the result's node holds, which the
// operator may pass on whole to one operand (handOn).
type ownGrad struct {
	*mat.Dense[float32]
	given bool // an operand's node took the buffer as its gradient
}

// handOn delivers gy, the gradient Backward received, to t as its
// gradient unchanged (a residual, a sum's operand): where gy is the
// result's own buffer (ownGrad) and t has no gradient yet, t's node takes
// the buffer itself, which spago would copy into a fresh one (an
// allocation the runtime zeroes, then a pass over the values, both
// serial). It must be the operator's last read of gy: another operand of
// t's may add into the buffer at once.
func (e *Engine) handOn(t tensor.Tensor, gy mat.Tensor) {
	og, ok := gy.(*ownGrad)
	if !ok || og.given {
		tensor.AccGrad(t.Node(), tensor.Float32s(gy))
		return
	}
	h := &handOver{Dense: og.Dense}
	t.Node().AccGrad(h)
	og.given = h.taken
}

// accGrad delivers g, a scratch buffer the caller gives up, as a gradient
// of t's node: the node's first gradient takes g itself (spago would copy
// it, a pass over memory per node and a fresh buffer), a later one is
// added to it and g recycled.
func (e *Engine) accGrad(t tensor.Tensor, g []float32) {
	h := &handOver{Dense: mat.NewDense[float32](mat.WithShape(t.Node().Value().Shape()...), mat.WithBacking(g))}
	t.Node().AccGrad(h)
	if !h.taken {
		e.release(g)
	}
}

// handOver is a gradient whose buffer the receiving node may keep: spago
// stores a node's first gradient as its Clone, which here is the matrix
// itself rather than a copy.
type handOver struct {
	*mat.Dense[float32]
	taken bool
}

func (h *handOver) Clone() mat.Matrix {
	h.taken = true
	return h.Dense
}

// missing returns an error if any of ts is the zero Tensor.
func missing(op string, ts ...tensor.Tensor) error {
	for _, t := range ts {
		if !t.Valid() {
			return fmt.Errorf("ops: %s: missing operand (zero Tensor)", op)
		}
	}
	return nil
}

// block is the number of elements elementwise kernels process at a time,
// with their intermediate values in a stack buffer that stays in L1.
const block = 256

// blocks runs fn over [0, n) in parallel, in pieces of at most block
// elements, each with its own scratch slice s (len hi-lo).
func (e *Engine) blocks(n int, fn func(lo, hi int, s []float32)) {
	e.par(n, grain, func(lo, hi int) {
		var buf [block]float32
		for b := lo; b < hi; b += block {
			end := min(b+block, hi)
			fn(b, end, buf[:end-b])
		}
	})
}
