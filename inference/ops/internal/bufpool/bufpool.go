// Package bufpool recycles float32 scratch buffers (im2col columns, padded
// copies, gradient staging) so that operators do not allocate them per call.
//
// Buffers are grouped in size classes four to a power of two, so a buffer
// wastes at most a quarter of its capacity. Buffers under MinSize are not
// pooled: allocating them is cheaper than the pool's bookkeeping.
package bufpool

import (
	"math/bits"
	"sync"
)

// MinSize is the smallest length that is pooled.
const MinSize = 1024

// nClasses covers lengths up to 2^40 floats.
const nClasses = 4*(40-10) + 1

// Pool is a set of sync.Pools, one per size class. The zero Pool is ready
// to use and a nil *Pool allocates every time. It is safe for concurrent
// use.
type Pool struct {
	classes [nClasses]sync.Pool
}

// classOf returns the class index and capacity for a buffer of n floats,
// or -1 when n is not pooled.
func classOf(n int) (idx, size int) {
	if n <= MinSize {
		return -1, n
	}
	e := bits.Len(uint(n - 1)) // 2^(e-1) < n <= 2^e, e > 10
	step := 1 << (e - 3)       // a quarter of the octave (2^(e-1), 2^e]
	m := (n-1)>>(e-3) + 1      // ceil(n/step), in 5..8
	idx = (e-11)*4 + (m - 5)
	if idx >= nClasses {
		return -1, n
	}
	return idx, m * step
}

// Get returns a buffer of length n with unspecified contents.
func (p *Pool) Get(n int) []float32 {
	idx, size := classOf(n)
	if p == nil || idx < 0 {
		return make([]float32, n)
	}
	if v, ok := p.classes[idx].Get().([]float32); ok {
		return v[:n]
	}
	return make([]float32, n, size)
}

// GetZero returns a zeroed buffer of length n.
func (p *Pool) GetZero(n int) []float32 {
	b := p.Get(n)
	clear(b)
	return b
}

// Put hands b back for reuse; b must not be used afterwards. Buffers that
// did not come from Get are dropped.
func (p *Pool) Put(b []float32) {
	if p == nil {
		return
	}
	idx, size := classOf(cap(b))
	if idx < 0 || size != cap(b) {
		return
	}
	p.classes[idx].Put(b[:size]) //nolint:staticcheck // a slice header per Put is fine for large buffers
}
