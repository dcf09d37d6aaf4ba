package blocks

import (
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/mat/float"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// lazyWeight is a constant spago leaf over a float16 weight: every read
// of its value (Value, Data) converts the weight into a fresh float32
// buffer that nothing keeps, so an operator recorded for backward holds
// only the float16 values and converts them again when its Backward reads
// the weight. It never requires or takes gradients.
type lazyWeight struct {
	h    *HalfTensor
	e    *ops.Engine
	ohiw bool // converted into ops.OHIW's layout (see ConvertHalfOHIW)
}

var _ mat.Tensor = (*lazyWeight)(nil)

func (l *lazyWeight) Shape() []int { return []int{1, len(l.h.data)} } // as tensor's leaves
func (l *lazyWeight) Dims() int    { return 2 }
func (l *lazyWeight) Size() int    { return len(l.h.data) }

// Value converts the weight.
func (l *lazyWeight) Value() mat.Tensor {
	buf := make([]float32, len(l.h.data))
	if s := l.h.shape; l.ohiw {
		ConvertHalfOHIW(l.e, buf, l.h.data, s[0], s[1], s[2], s[3])
	} else {
		ConvertHalf(l.e, buf, l.h.data)
	}
	if l.h.pool != nil {
		l.h.pool.countUnpooled()
	}
	return tensor.Leaf(buf)
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
