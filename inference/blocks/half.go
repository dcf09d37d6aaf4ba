package blocks

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/perfusion-studio/perfusion/inference/blocks/internal/f16"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
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
	// Params, when not nil, makes the model trainable: every tensor is
	// read as float32 (Half is ignored) into a leaf that requires
	// gradients, and recorded here under its full checkpoint key. The
	// source's float32 data is used as is (a weights.Map's slices are the
	// parameters). For training; inference leaves it nil.
	Params map[string]tensor.Tensor
}

// HalfTensor is a layer weight held as float16 (raw IEEE binary16). Each
// operator call converts it into a float32 buffer lent by the model's
// WeightPool, so only the layers running at the moment exist in float32.
//
// The values may be a read-only view of a memory-mapped checkpoint (see
// weights.HalfViewer): the HalfTensor then holds the mapping, which stays
// valid as long as the HalfTensor (or a Reshape of it) is reachable, so a
// model's mapped weights live exactly as long as the model.
type HalfTensor struct {
	data  []uint16
	shape []int
	pool  *WeightPool
	keep  any // what keeps data valid (a file mapping), or nil
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

// Data returns the float16 values (not a copy; do not modify: they may be
// a read-only mapping). Keep h reachable while they are used.
func (h *HalfTensor) Data() []uint16 { return h.data }

// Bytes is the memory the values take (2 per value).
func (h *HalfTensor) Bytes() int64 { return 2 * int64(len(h.data)) }

// Reshape returns a view of the same values with another shape.
func (h *HalfTensor) Reshape(shape ...int) (*HalfTensor, error) {
	if tensor.Numel(shape) != len(h.data) {
		return nil, fmt.Errorf("blocks: cannot reshape %v to %v", h.shape, shape)
	}
	return &HalfTensor{data: h.data, shape: append([]int(nil), shape...), pool: h.pool, keep: h.keep}, nil
}

// String prints the shape, for errors.
func (h *HalfTensor) String() string { return fmt.Sprintf("HalfTensor%v", h.shape) }

// Float32 converts the weight for one operator call and returns it as a
// constant tensor, with release to call once the operator has returned.
// keep is for calls that record a gradient graph (an operand requires
// grad), whose operator reads the weight again in its backward pass: the
// tensor is then a lazy constant that converts the float16 values afresh
// on every read (once in the forward pass, once in the backward pass, each
// into a pool buffer the operator gives back: tensor.Lender), so a
// training step never holds float32 copies of the weights between its
// forward and backward passes (the recomputation costs one conversion per
// layer). Otherwise the buffer is borrowed from the pool, and release
// gives it back; the tensor must not be used after release. Under the
// engine of an open WeightScope of h's pool (WeightPool.Hold) the weight
// is converted once for the scope's life instead, keep or not, and
// release does nothing. Where e multiplies float16 directly
// (ops.Engine.HalfGemm) the tensor is the lazy constant, keep or not, and
// under a scope too: the operators that take such a weight (linears, 1x1
// and small-image convolutions) read its float16 values as stored
// (tensor.HalfHolder) forward and backward, so there is nothing to
// convert, let alone to hold.
func (h *HalfTensor) Float32(e *ops.Engine, keep bool) (w tensor.Tensor, release func()) {
	if e.HalfGemm() {
		return h.lazy(e, false), func() {}
	}
	if s := h.pool.scope(e); s != nil && len(h.data) > 0 {
		return s.weight(h, false), func() {}
	}
	if keep {
		return h.lazy(e, false), func() {}
	}
	buf, release := h.buffer()
	ConvertHalf(e, buf, h.data)
	h.pool.countPooled()
	runtime.KeepAlive(h)
	return tensor.MustNew(buf, h.shape...), release // len(buf) = numel by construction
}

// shapeOnly returns a tensor of h's shape for shape checks: a float16
// leaf whose values are never read.
func (h *HalfTensor) shapeOnly() tensor.Tensor {
	t, _ := tensor.FromNode(&lazyWeight{h: h}, h.shape...) // same numel by construction
	return t
}

// Float32OHIW is Float32 for a convolution weight [O, C, KH, KW]: the
// result is reordered as it is converted into ops.OHIW's [O, KH, C, KW],
// the layout ops.Conv2D computes in, which saves it a pass over the
// weight. The HalfTensor must have rank 4.
func (h *HalfTensor) Float32OHIW(e *ops.Engine, keep bool) (w tensor.Tensor, release func()) {
	s := h.shape
	if sc := h.pool.scope(e); sc != nil && len(h.data) > 0 {
		return sc.weight(h, true), func() {}
	}
	if keep {
		return h.lazy(e, true), func() {}
	}
	buf, release := h.buffer()
	ConvertHalfOHIW(e, buf, h.data, s[0], s[1], s[2], s[3])
	h.pool.countPooled()
	runtime.KeepAlive(h)
	return tensor.MustNew(buf, s[0], s[2], s[1], s[3]), release
}

// lazy returns the weight as a lazyWeight tensor, in the OHIW layout when
// ohiw is set.
func (h *HalfTensor) lazy(e *ops.Engine, ohiw bool) tensor.Tensor {
	shape := h.shape
	if ohiw {
		shape = []int{h.shape[0], h.shape[2], h.shape[1], h.shape[3]}
	}
	t, _ := tensor.FromNode(&lazyWeight{h: h, e: e, ohiw: ohiw}, shape...) // same numel by construction
	return t
}

// buffer returns a pooled float32 buffer for the converted weight (see
// Float32), or a fresh one without a pool.
func (h *HalfTensor) buffer() ([]float32, func()) {
	if h.pool == nil {
		return make([]float32, len(h.data)), func() {}
	}
	buf := h.pool.get(len(h.data))
	return buf, func() { h.pool.put(buf) }
}

// convertChunk is the number of values one goroutine converts at a time
// at least: below it, goroutines cost more than they save.
const convertChunk = 1 << 15

// ConvertHalf converts src (binary16) into dst[:len(src)] exactly (see
// weights.HalfToFloat32s; with F16C, signalling NaNs come out quiet), in
// parallel chunks on e's backend (serially when e is nil).
func ConvertHalf(e *ops.Engine, dst []float32, src []uint16) {
	dst = dst[:len(src)]
	chunks := (len(src) + convertChunk - 1) / convertChunk
	if e == nil || e.B == nil || chunks <= 1 || e.B.Threads() <= 1 {
		f16.ToFloat32s(dst, src)
		return
	}
	e.B.Parallel(chunks, func(lo, hi int) {
		a, b := lo*convertChunk, min(hi*convertChunk, len(src))
		f16.ToFloat32s(dst[a:b], src[a:b])
	})
}

// permBlock is the number of values ConvertHalfOHIW converts into a stack
// buffer before scattering them: small enough to stay in L1.
const permBlock = 1024

// scatter3x3 writes the 3x3 kernels blk [n, 3, 3] of n input channels as
// their three kernel rows r0, r1, r2, each [n, 3].
func scatter3x3(r0, r1, r2, blk []float32) {
	n := len(blk) / 9
	r0, r1, r2 = r0[:3*n], r1[:3*n], r2[:3*n]
	for i := 0; i < n; i++ {
		b := blk[9*i : 9*i+9 : 9*i+9]
		a, m, z := r0[3*i:3*i+3:3*i+3], r1[3*i:3*i+3:3*i+3], r2[3*i:3*i+3:3*i+3]
		a[0], a[1], a[2] = b[0], b[1], b[2]
		m[0], m[1], m[2] = b[3], b[4], b[5]
		z[0], z[1], z[2] = b[6], b[7], b[8]
	}
}

// ConvertHalfOHIW converts a convolution weight src [O, C, KH, KW]
// (binary16) into dst [O, KH, C, KW] (float32), as ConvertHalf does, in
// parallel over output channels on e's backend (serially when e is nil).
func ConvertHalfOHIW(e *ops.Engine, dst []float32, src []uint16, o, c, kh, kw int) {
	n := c * kh * kw // values per output channel
	dst, src = dst[:o*n], src[:o*n]
	if kh == 1 {
		ConvertHalf(e, dst, src)
		return
	}
	work := func(lo, hi int) {
		var buf [permBlock]float32
		cb := max(1, permBlock/(kh*kw)) // channels per block
		for oc := lo; oc < hi; oc++ {
			s, d := src[oc*n:(oc+1)*n], dst[oc*n:(oc+1)*n]
			for c0 := 0; c0 < c; c0 += cb {
				c1 := min(c0+cb, c)
				blk := buf[:(c1-c0)*kh*kw] // [c1-c0, KH, KW]
				f16.ToFloat32s(blk, s[c0*kh*kw:c1*kh*kw])
				if kh == 3 && kw == 3 {
					scatter3x3(d[c0*3:c1*3], d[(c+c0)*3:(c+c1)*3], d[(2*c+c0)*3:(2*c+c1)*3], blk)
					continue
				}
				for r := 0; r < kh; r++ {
					row := d[(r*c+c0)*kw : (r*c+c1)*kw] // [c1-c0, KW] of kernel row r
					for i := 0; i < c1-c0; i++ {
						copy(row[i*kw:(i+1)*kw], blk[(i*kh+r)*kw:])
					}
				}
			}
		}
	}
	chunks := min(o, (len(src)+convertChunk-1)/convertChunk)
	if e == nil || e.B == nil || chunks <= 1 || e.B.Threads() <= 1 {
		work(0, o)
		return
	}
	e.B.Parallel(chunks, func(lo, hi int) { work(lo*o/chunks, hi*o/chunks) })
}

// poolIdle is how many full-size buffers a WeightPool keeps between
// calls: one per forward pass running at once, for up to two concurrent
// passes.
const poolIdle = 2

// WeightPool lends the float32 buffers that half weights are converted
// into for one operator call. Its full-size buffers hold the model's
// largest weight, so any of them serves any layer. A forward pass holds
// one buffer at a time and at most poolIdle (2) are kept between calls,
// so the float32 copies of a model's weights take a few layers' worth of
// memory, not the model's size. A backward pass runs independent
// operators at once (spago starts one goroutine per operator), e.g. the
// query, key and value projections of an attention layer: a borrower that
// finds no idle buffer while poolIdle full-size ones are lent gets a spare
// about its weight's size (see spareCap), and the pool keeps spares up to
// poolIdle full-size buffers' worth, smallest dropped first (in SD1.5's
// UNet they are attention projections of a few MB), so a training pass does not
// allocate (and the kernel zero) a buffer of the largest weight for each
// such borrow. It is safe for concurrent use.
type WeightPool struct {
	mu     sync.Mutex
	size   int               // floats per full-size buffer: the largest weight registered
	free   [][]float32       // idle full-size buffers
	lent   map[*float32]bool // full-size buffers lent, by their first value
	spare  [][]float32       // idle smaller buffers, sorted by capacity
	spareN int               // floats in spare
	stats  PoolStats
	scopes map[*ops.Engine]*WeightScope // open scopes by engine (see Hold)
}

// PoolStats counts a WeightPool's buffers.
type PoolStats struct {
	Size      int // floats per buffer
	InUse     int // buffers lent and not yet returned
	Idle      int // full-size buffers kept for the next calls
	Spares    int // smaller buffers kept for concurrent borrowers (see WeightPool)
	Allocated int // buffers allocated since the pool was made
	Unpooled  int // conversions for gradient graphs (each read of a lazy weight), outside the pool
	Pooled    int // conversions into pooled buffers (one operator call each)
	Held      int // conversions into WeightScope buffers (one per weight and scope)
	Direct    int // reads of weights the operators multiply as stored (no conversion; Engine.HalfGemm)
}

// Conversions is the number of float16 weights converted, every way.
func (s PoolStats) Conversions() int { return s.Unpooled + s.Pooled + s.Held }

// Stats returns the current counts.
func (p *WeightPool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Size, s.Idle, s.Spares = p.size, len(p.free), len(p.spare)
	return s
}

// reserve makes buffers large enough for a weight of n values.
func (p *WeightPool) reserve(n int) {
	p.mu.Lock()
	p.size = max(p.size, n)
	p.mu.Unlock()
}

// get lends a buffer of n values (at most the largest weight's): the
// smallest idle spare of at most spareCap(n) values that holds n, else an
// idle full-size buffer, else a new full-size one while fewer than
// poolIdle are lent, else a new spare of spareCap(n).
func (p *WeightPool) get(n int) []float32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.InUse++
	i, _ := slices.BinarySearchFunc(p.spare, n, func(b []float32, n int) int { return cap(b) - n })
	if i < len(p.spare) && cap(p.spare[i]) <= p.spareCap(n) {
		b := p.spare[i]
		p.spare = slices.Delete(p.spare, i, i+1)
		p.spareN -= cap(b)
		return b[:n]
	}
	for len(p.free) > 0 {
		b := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if cap(b) >= n {
			return p.lend(b, n)
		}
	}
	p.stats.Allocated++
	if len(p.lent) < poolIdle || n >= p.size {
		return p.lend(make([]float32, max(p.size, n, 1)), n)
	}
	return make([]float32, n, p.spareCap(n))
}

// spareCap is the capacity of a spare for n values: n rounded up to a
// power of two, or a full-size buffer's from half of that on, so spares
// come in a few sizes and one serves every weight of its size class.
func (p *WeightPool) spareCap(n int) int {
	c := 1
	for c < n {
		c <<= 1
	}
	if 2*c >= p.size {
		return max(n, p.size)
	}
	return c
}

// lend records the full-size buffer b as lent and returns its first n values.
func (p *WeightPool) lend(b []float32, n int) []float32 {
	if p.lent == nil {
		p.lent = map[*float32]bool{}
	}
	p.lent[unsafe.SliceData(b)] = true
	return b[:n]
}

// put takes back a buffer that get lent: a full-size one is kept if fewer
// than poolIdle are idle, a spare unless the spares then exceed poolIdle
// full-size buffers (the smallest go first).
func (p *WeightPool) put(b []float32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.InUse--
	if k := unsafe.SliceData(b); cap(b) > 0 && p.lent[k] {
		delete(p.lent, k)
		if len(p.free) < poolIdle && cap(b) >= p.size {
			p.free = append(p.free, b[:cap(b)])
		}
		return
	}
	i, _ := slices.BinarySearchFunc(p.spare, cap(b), func(f []float32, n int) int { return cap(f) - n })
	p.spare = slices.Insert(p.spare, i, b[:cap(b)])
	p.spareN += cap(b)
	for p.spareN > poolIdle*p.size && len(p.spare) > 0 {
		p.spareN -= cap(p.spare[0])
		p.spare = p.spare[1:]
	}
}

func (p *WeightPool) countUnpooled() {
	p.mu.Lock()
	p.stats.Unpooled++
	p.mu.Unlock()
}

func (p *WeightPool) countPooled() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stats.Pooled++
	p.mu.Unlock()
}

func (p *WeightPool) countDirect() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stats.Direct++
	p.mu.Unlock()
}

func (p *WeightPool) countHeld() {
	p.mu.Lock()
	p.stats.Held++
	p.mu.Unlock()
}
