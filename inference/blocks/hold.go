package blocks

import (
	"runtime"
	"slices"
	"sync"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Held weights. A layer that records a gradient graph reads its float16
// weight twice, in its forward and in its backward pass, and without a
// scope each read converts the weight afresh (a lazyWeight). A
// WeightScope converts each weight read under its engine once, into a
// buffer it keeps until Close: the recomputation of a checkpointed block
// (Recompute.CheckpointOn) opens one, so its forward and backward passes
// share one float32 copy of the block's weights, which lives only until
// that block's backward pass has finished.

// heldKey names one converted weight: its values and its layout.
type heldKey struct {
	data *uint16
	n    int
	ohiw bool
}

// WeightScope holds the float32 copies of the float16 weights of one
// WeightPool's model read under its engine (see WeightPool.Hold). It is
// safe for concurrent use.
type WeightScope struct {
	pool  *WeightPool
	e     *ops.Engine // the copy whose calls the scope serves
	spare *HeldBuffers
	mu    sync.Mutex
	bufs  map[heldKey][]float32
	keep  []*HalfTensor // the weights converted, reachable while their copies are
}

// Hold opens a scope for the float16 weights of p's model and returns it:
// calls on its Engine (a copy of e) convert each weight once, into a
// buffer of spare (nil: freshly allocated), and keep it until Close. The
// copies do not change the results: the conversion is exact.
func (p *WeightPool) Hold(e *ops.Engine, spare *HeldBuffers) *WeightScope {
	c := *e // a distinct engine: its address identifies the scope
	s := &WeightScope{pool: p, e: &c, spare: spare, bufs: map[heldKey][]float32{}}
	p.mu.Lock()
	if p.scopes == nil {
		p.scopes = map[*ops.Engine]*WeightScope{}
	}
	p.scopes[s.e] = s
	p.mu.Unlock()
	return s
}

// Engine returns the engine to run the scope's layers on.
func (s *WeightScope) Engine() *ops.Engine { return s.e }

// Close ends the scope: its buffers go back to its HeldBuffers (or to
// the garbage collector). Tensors converted under it must not be used
// afterwards. Close is idempotent.
func (s *WeightScope) Close() {
	s.pool.mu.Lock()
	delete(s.pool.scopes, s.e)
	s.pool.mu.Unlock()
	s.mu.Lock()
	bufs := s.bufs
	s.bufs, s.keep = nil, nil
	s.mu.Unlock()
	if s.spare == nil {
		return
	}
	var held int64
	for _, b := range bufs {
		held += 4 * int64(cap(b))
	}
	for _, b := range bufs {
		s.spare.put(b, held)
	}
}

// scope returns the open scope of e, or nil.
func (p *WeightPool) scope(e *ops.Engine) *WeightScope {
	if p == nil || e == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.scopes[e]
}

// weight returns h converted (into ops.OHIW's layout when ohiw is set),
// once for the scope's life.
func (s *WeightScope) weight(h *HalfTensor, ohiw bool) tensor.Tensor {
	k := heldKey{data: &h.data[0], n: len(h.data), ohiw: ohiw}
	shape := h.shape
	if ohiw {
		shape = []int{h.shape[0], h.shape[2], h.shape[1], h.shape[3]}
	}
	s.mu.Lock()
	defer s.mu.Unlock() // converting under the lock: a block's layers run one by one
	if s.bufs == nil {
		panic("blocks: a weight read through a closed WeightScope")
	}
	if b, ok := s.bufs[k]; ok {
		return tensor.MustNew(b, shape...)
	}
	var b []float32
	if s.spare != nil {
		b = s.spare.get(len(h.data))
	} else {
		b = make([]float32, len(h.data))
	}
	if ohiw {
		ConvertHalfOHIW(s.e, b, h.data, h.shape[0], h.shape[1], h.shape[2], h.shape[3])
	} else {
		ConvertHalf(s.e, b, h.data)
	}
	runtime.KeepAlive(h)
	s.bufs[k] = b
	s.keep = append(s.keep, h)
	s.pool.countHeld()
	return tensor.MustNew(b, shape...)
}

// HeldBuffers recycles the buffers of WeightScopes opened one after the
// other (the checkpoints of one backward pass): a scope takes the
// smallest spare buffer that fits each weight, and Close gives its
// buffers back. It keeps at most as many bytes as the largest scope held,
// so its memory is one block's weights in float32, for as long as the
// HeldBuffers is reachable. The zero value is ready; it is safe for
// concurrent use.
type HeldBuffers struct {
	mu    sync.Mutex
	free  [][]float32 // sorted by capacity
	bytes int64       // in free
	limit int64       // the largest scope seen, in bytes
	made  int         // buffers allocated (for tests)
}

// get returns a buffer of n values (its contents undefined).
func (hb *HeldBuffers) get(n int) []float32 {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	i, _ := slices.BinarySearchFunc(hb.free, n, func(b []float32, n int) int { return cap(b) - n })
	if i < len(hb.free) && cap(hb.free[i]) <= n+n/4 { // waste at most a quarter
		b := hb.free[i]
		hb.free = slices.Delete(hb.free, i, i+1)
		hb.bytes -= 4 * int64(cap(b))
		return b[:n]
	}
	hb.made++
	return make([]float32, n)
}

// put keeps b for a later get, given that its scope held bytes; beyond
// the limit the smallest buffers are dropped.
func (hb *HeldBuffers) put(b []float32, held int64) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.limit = max(hb.limit, held)
	i, _ := slices.BinarySearchFunc(hb.free, cap(b), func(f []float32, n int) int { return cap(f) - n })
	hb.free = slices.Insert(hb.free, i, b[:cap(b)])
	hb.bytes += 4 * int64(cap(b))
	for hb.bytes > hb.limit && len(hb.free) > 0 {
		hb.bytes -= 4 * int64(cap(hb.free[0]))
		hb.free = hb.free[1:]
	}
}

// Bytes is the memory the spare buffers take.
func (hb *HeldBuffers) Bytes() int64 {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	return hb.bytes
}
