package blocks

import (
	"fmt"
	"sync"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// HalfMode says which layer weights (Linear and Conv2D weight matrices) a
// Loader keeps in memory as float16. Biases, norm parameters and
// embeddings are always float32.
type HalfMode int

const (
	// HalfAsStored keeps the layer weights a checkpoint stores as F16 as
	// float16 (2 bytes a value, converted exactly on use) and reads every
	// other tensor as float32. The default.
	HalfAsStored HalfMode = iota
	// HalfNever reads every weight as float32 (4 bytes a value).
	HalfNever
	// HalfAlways also rounds float32 (and bfloat16) layer weights to
	// float16 on load, halving their memory. This changes the weights:
	// each is rounded to the nearest float16 (relative error at most
	// 2^-11), as running the model in fp16 does, which most SD tools do
	// anyway. A tensor with values beyond float16's range stays float32.
	HalfAlways
)

// String names the mode.
func (m HalfMode) String() string {
	switch m {
	case HalfAsStored:
		return "as stored"
	case HalfNever:
		return "never"
	case HalfAlways:
		return "always"
	}
	return fmt.Sprintf("HalfMode(%d)", int(m))
}

// LoadOptions change how a model's weights are held in memory. The zero
// value keeps each layer weight in its checkpoint's dtype.
type LoadOptions struct {
	Half HalfMode
}

// HalfTensor is a layer weight held as float16 (raw IEEE binary16). Each
// operator call converts it into a float32 buffer lent by the model's
// WeightPool, so only the layers running at the moment exist in float32.
type HalfTensor struct {
	data  []uint16
	shape []int
	pool  *WeightPool
}

// NewHalfTensor wraps data (not copied) with a shape; pool lends its
// conversion buffers (nil: a fresh buffer every call).
func NewHalfTensor(data []uint16, pool *WeightPool, shape ...int) (*HalfTensor, error) {
	if n := tensor.Numel(shape); n != len(data) {
		return nil, fmt.Errorf("blocks: shape %v needs %d values, got %d", shape, n, len(data))
	}
	if pool != nil {
		pool.reserve(len(data))
	}
	return &HalfTensor{data: data, shape: append([]int(nil), shape...), pool: pool}, nil
}

// Shape returns a copy of the shape.
func (h *HalfTensor) Shape() []int { return append([]int(nil), h.shape...) }

// Data returns the float16 values (not a copy; do not modify).
func (h *HalfTensor) Data() []uint16 { return h.data }

// Bytes is the memory the values take (2 per value).
func (h *HalfTensor) Bytes() int64 { return 2 * int64(len(h.data)) }

// Reshape returns a view of the same values with another shape.
func (h *HalfTensor) Reshape(shape ...int) (*HalfTensor, error) {
	if tensor.Numel(shape) != len(h.data) {
		return nil, fmt.Errorf("blocks: cannot reshape %v to %v", h.shape, shape)
	}
	return &HalfTensor{data: h.data, shape: append([]int(nil), shape...), pool: h.pool}, nil
}

// String prints the shape, for errors.
func (h *HalfTensor) String() string { return fmt.Sprintf("HalfTensor%v", h.shape) }

// Float32 converts the weight for one operator call and returns it as a
// constant tensor, with release to call once the operator has returned.
// keep is for calls that record a gradient graph (an operand requires
// grad): the operator keeps the weight for its backward pass, so the
// buffer is a fresh allocation left to the garbage collector. Otherwise it
// is borrowed from the pool, and release gives it back; the tensor must
// not be used after release.
func (h *HalfTensor) Float32(e *ops.Engine, keep bool) (w tensor.Tensor, release func()) {
	var buf []float32
	if keep || h.pool == nil {
		buf = make([]float32, len(h.data))
		if h.pool != nil {
			h.pool.countUnpooled()
		}
		release = func() {}
	} else {
		buf = h.pool.get(len(h.data))
		release = func() { h.pool.put(buf) }
	}
	ConvertHalf(e, buf, h.data)
	return tensor.MustNew(buf, h.shape...), release // len(buf) = numel by construction
}

// convertChunk is the number of values one goroutine converts at a time
// at least: below it, goroutines cost more than they save.
const convertChunk = 1 << 15

// ConvertHalf converts src (binary16) into dst[:len(src)] exactly (see
// weights.HalfToFloat32s), in parallel chunks on e's backend (serially
// when e is nil).
func ConvertHalf(e *ops.Engine, dst []float32, src []uint16) {
	dst = dst[:len(src)]
	chunks := (len(src) + convertChunk - 1) / convertChunk
	if e == nil || e.B == nil || chunks <= 1 || e.B.Threads() <= 1 {
		weights.HalfToFloat32s(dst, src)
		return
	}
	e.B.Parallel(chunks, func(lo, hi int) {
		a, b := lo*convertChunk, min(hi*convertChunk, len(src))
		weights.HalfToFloat32s(dst[a:b], src[a:b])
	})
}

// poolIdle is how many buffers a WeightPool keeps between calls: one per
// forward pass running at once, for up to two concurrent passes.
const poolIdle = 2

// WeightPool lends the float32 buffers that half weights are converted
// into for one operator call. Every buffer holds the model's largest
// weight, so any buffer serves any layer. A forward pass holds one buffer
// at a time and at most poolIdle (2) are kept between calls (the rest are
// left to the garbage collector), so the float32 copies of a model's
// weights take a few layers' worth of memory, not the model's size. It is
// safe for concurrent use.
type WeightPool struct {
	mu    sync.Mutex
	size  int // floats per buffer: the largest weight registered
	free  [][]float32
	stats PoolStats
}

// PoolStats counts a WeightPool's buffers.
type PoolStats struct {
	Size      int // floats per buffer
	InUse     int // buffers lent and not yet returned
	Idle      int // buffers kept for the next calls
	Allocated int // buffers allocated since the pool was made
	Unpooled  int // conversions for gradient graphs, allocated outside the pool
}

// Stats returns the current counts.
func (p *WeightPool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Size, s.Idle = p.size, len(p.free)
	return s
}

// reserve makes buffers large enough for a weight of n values.
func (p *WeightPool) reserve(n int) {
	p.mu.Lock()
	p.size = max(p.size, n)
	p.mu.Unlock()
}

func (p *WeightPool) get(n int) []float32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.InUse++
	for len(p.free) > 0 {
		b := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if cap(b) >= n {
			return b[:n]
		}
	}
	p.stats.Allocated++
	return make([]float32, max(p.size, n))[:n]
}

func (p *WeightPool) put(b []float32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.InUse--
	if len(p.free) < poolIdle && cap(b) >= p.size {
		p.free = append(p.free, b[:cap(b)])
	}
}

func (p *WeightPool) countUnpooled() {
	p.mu.Lock()
	p.stats.Unpooled++
	p.mu.Unlock()
}
