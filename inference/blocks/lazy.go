package blocks

import (
	"runtime"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/mat/float"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// lazyWeight is a constant spago leaf over a float16 weight: every read
// of its value converts the weight, so an operator recorded for backward
// holds only the float16 values and converts them again when its Backward
// reads the weight. The operators read it as stored where they multiply
// float16 directly (HalfData), otherwise through Lend (a buffer of the
// model's WeightPool, given back after the pass); Value and Data convert
// into a fresh buffer that nothing keeps. It never requires or takes
// gradients.
type lazyWeight struct {
	h    *HalfTensor
	e    *ops.Engine
	ohiw bool // converted into ops.OHIW's layout (see ConvertHalfOHIW)
}

var _ mat.Tensor = (*lazyWeight)(nil)

func (l *lazyWeight) Shape() []int { return []int{1, len(l.h.data)} } // as tensor's leaves
func (l *lazyWeight) Dims() int    { return 2 }
func (l *lazyWeight) Size() int    { return len(l.h.data) }

// Value converts the weight into a fresh buffer.
func (l *lazyWeight) Value() mat.Tensor {
	buf := make([]float32, len(l.h.data))
	l.convert(buf)
	if l.h.pool != nil {
		l.h.pool.countUnpooled()
	}
	return tensor.Leaf(buf)
}

// Lend converts the weight into a buffer of the model's WeightPool, which
// release returns (tensor.Lender): the operators read a float16 weight
// through it once per pass, so a training step converts each weight into
// reused memory instead of a fresh buffer per read (a fresh buffer costs
// the kernel's page faults and the collector's work).
func (l *lazyWeight) Lend() (data []float32, release func()) {
	buf, release := l.h.buffer()
	l.convert(buf)
	l.h.pool.countPooled()
	return buf, release
}

// convert writes the float32 weight, in the layout l asks for, into buf.
func (l *lazyWeight) convert(buf []float32) {
	if s := l.h.shape; l.ohiw {
		ConvertHalfOHIW(l.e, buf, l.h.data, s[0], s[1], s[2], s[3])
	} else {
		ConvertHalf(l.e, buf, l.h.data)
	}
	runtime.KeepAlive(l.h) // its mapping stays valid while converting
}

// HalfData implements tensor.HalfHolder: the float16 values as stored,
// unless l is read in the OHIW layout (nil: they are in another order
// than l's shape). Operators that multiply float16 directly read them
// instead of converting (a forward pass, with or without a gradient
// graph, and the backward pass to the input); each such read is counted
// (PoolStats.Direct).
func (l *lazyWeight) HalfData() []uint16 {
	if l.ohiw || l.h == nil {
		return nil
	}
	l.h.pool.countDirect()
	return l.h.data
}

func (l *lazyWeight) Data() float.Slice            { return l.Value().Data() }
func (l *lazyWeight) Item() float.Float            { return l.Value().Item() }
func (l *lazyWeight) At(indices ...int) mat.Tensor { return l.Value().At(indices...) }
func (l *lazyWeight) SetAt(_ mat.Tensor, _ ...int) { panic("blocks: a float16 weight is read-only") }
func (l *lazyWeight) Grad() mat.Tensor             { return nil }
func (l *lazyWeight) HasGrad() bool                { return false }
func (l *lazyWeight) RequiresGrad() bool           { return false }
func (l *lazyWeight) AccGrad(mat.Tensor)           {}
func (l *lazyWeight) ZeroGrad()                    {}
