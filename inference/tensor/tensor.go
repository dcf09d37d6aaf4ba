// Package tensor carries n-dimensional float32 values on spago nodes, so
// that our operators plug into spago's ag autograd graph.
//
// Legend used across inference/: B batch, C channels, H height, W width,
// T tokens, D embedding width. Images are NCHW ([B, C, H, W]); token
// sequences are [B, T, D]. Data is row-major and contiguous.
//
// spago's mat.Dense is at most two-dimensional, so every value is stored as
// a [1, size] Dense and the logical shape lives in Tensor. A Reshape shares
// the node, so gradients flow through it for free.
package tensor

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/mat/float"
)

// Tensor is a logical shape over one spago node (a leaf *mat.Dense[float32]
// or an *ag.Operator). The zero Tensor is empty and invalid.
type Tensor struct {
	node  mat.Tensor
	shape []int
}

// New wraps data (not copied) as a constant leaf of the given shape.
func New(data []float32, shape ...int) (Tensor, error) {
	if n := Numel(shape); n != len(data) {
		return Tensor{}, fmt.Errorf("tensor: shape %v needs %d values, got %d", shape, n, len(data))
	}
	return Tensor{node: dense(data, false), shape: clone(shape)}, nil
}

// MustNew is New for shapes known to be right by construction; it panics
// otherwise. Use it only in tests and for freshly allocated buffers.
func MustNew(data []float32, shape ...int) Tensor {
	t, err := New(data, shape...)
	if err != nil {
		panic(err)
	}
	return t
}

// Zeros returns a constant leaf of zeros.
func Zeros(shape ...int) Tensor {
	return MustNew(make([]float32, Numel(shape)), shape...)
}

// NewParam wraps data (not copied) as a leaf that requires gradients.
func NewParam(data []float32, shape ...int) (Tensor, error) {
	if n := Numel(shape); n != len(data) {
		return Tensor{}, fmt.Errorf("tensor: shape %v needs %d values, got %d", shape, n, len(data))
	}
	return Tensor{node: dense(data, true), shape: clone(shape)}, nil
}

// FromNode gives a spago node a logical shape. The node's size must match.
func FromNode(n mat.Tensor, shape ...int) (Tensor, error) {
	if n == nil {
		return Tensor{}, fmt.Errorf("tensor: nil node")
	}
	if got, want := n.Size(), Numel(shape); got != want {
		return Tensor{}, fmt.Errorf("tensor: node of %d values cannot have shape %v (%d values)", got, shape, want)
	}
	return Tensor{node: n, shape: clone(shape)}, nil
}

// Node returns the spago node, for ag.Backward and optimizers.
func (t Tensor) Node() mat.Tensor { return t.node }

// Valid reports whether t holds a node.
func (t Tensor) Valid() bool { return t.node != nil }

// Shape returns a copy of the logical shape.
func (t Tensor) Shape() []int { return clone(t.shape) }

// Rank is the number of dimensions.
func (t Tensor) Rank() int { return len(t.shape) }

// Dim returns the size of dimension i; negative i counts from the end.
func (t Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Size is the number of values.
func (t Tensor) Size() int { return Numel(t.shape) }

// Data returns the value's backing slice (not a copy). It waits for the
// forward pass of an operator node.
func (t Tensor) Data() []float32 { return Float32s(t.node.Value()) }

// Lender is a node whose value is computed afresh on every read, such as a
// float16 weight converted on use. Lend computes it into a borrowed buffer
// and release gives the buffer back, so an operator that reads such a node
// once per pass neither allocates a new copy nor keeps one.
type Lender interface {
	Lend() (data []float32, release func())
}

// Borrow returns t's values for one operator pass and a release to call
// once they are no longer read: a Lender's borrowed buffer, or Data (and a
// release that does nothing) for any other node. The values must not be
// used after release.
func (t Tensor) Borrow() (data []float32, release func()) {
	if l, ok := t.node.(Lender); ok {
		return l.Lend()
	}
	return t.Data(), func() {}
}

// HalfHolder is a node whose values are stored as IEEE binary16 (a
// float16 weight used in place), which operators that can multiply
// float16 directly read without converting.
type HalfHolder interface {
	// HalfData returns the stored values, row-major in the tensor's
	// shape, or nil when they are not in that order; they must not be
	// modified.
	HalfData() []uint16
}

// Half returns t's binary16 values when its node holds them in t's
// shape (HalfHolder), and false otherwise.
func (t Tensor) Half() ([]uint16, bool) {
	if h, ok := t.node.(HalfHolder); ok {
		if d := h.HalfData(); len(d) == t.Size() && len(d) > 0 {
			return d, true
		}
	}
	return nil, false
}

// Grad returns the accumulated gradient's backing slice, or nil if none.
func (t Tensor) Grad() []float32 {
	g := t.node.Grad()
	if g == nil || !t.node.HasGrad() {
		return nil
	}
	return Float32s(g)
}

// RequiresGrad reports whether gradients flow into t.
func (t Tensor) RequiresGrad() bool { return t.node.RequiresGrad() }

// ZeroGrad drops the accumulated gradient.
func (t Tensor) ZeroGrad() { t.node.ZeroGrad() }

// Reshape returns a view of the same node with another shape.
func (t Tensor) Reshape(shape ...int) (Tensor, error) {
	if Numel(shape) != t.Size() {
		return Tensor{}, fmt.Errorf("tensor: cannot reshape %v to %v", t.shape, shape)
	}
	return Tensor{node: t.node, shape: clone(shape)}, nil
}

// Detach returns a constant leaf sharing t's value data.
func (t Tensor) Detach() Tensor {
	return Tensor{node: dense(t.Data(), false), shape: clone(t.shape)}
}

// String prints the shape, for errors.
func (t Tensor) String() string { return fmt.Sprintf("Tensor%v", t.shape) }

// SameShape reports whether a and b have equal shapes.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Numel is the product of the dimensions (1 for a scalar shape).
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// Float32s returns the backing []float32 of a spago float32 value.
func Float32s(v mat.Tensor) []float32 { return float.SliceValueOf[float32](v.Data()) }

// AccGrad adds g (same length as n's value) into n's gradient.
// It is how operators' Backward methods deliver gradients.
func AccGrad(n mat.Tensor, g []float32) {
	n.AccGrad(mat.NewDense[float32](mat.WithShape(n.Value().Shape()...), mat.WithBacking(g)))
}

// Leaf wraps data as a constant spago node (shape [1, len]).
func Leaf(data []float32) *mat.Dense[float32] { return dense(data, false) }

func dense(data []float32, grad bool) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(1, len(data)), mat.WithBacking(data), mat.WithGrad(grad))
}

func clone(s []int) []int { return append([]int(nil), s...) }
