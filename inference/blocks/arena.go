package blocks

import (
	"sync"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/internal/hugepages"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Arena recycles the activation buffers of a model's forward passes. A
// sampling loop runs the same forward pass again and again, with the same
// sizes in the same order: after the first pass, every operator result is
// written into a buffer a previous pass has finished with, so a step
// allocates (almost) nothing, the garbage collector has no work, and the
// kernel maps no new pages.
//
// A Flow made with NewArenaFlow takes its results from the Arena; the model
// code gives them back at scope ends (Flow.Mark, Flow.Release, Flow.Free,
// Flow.Done). An Arena is safe for concurrent use by several flows; idle
// buffers of sizes the last finished pass did not use are dropped at its
// Done, so changing the image size does not keep the old size's buffers.
type Arena struct {
	mu    sync.Mutex
	free  map[int][][]float32 // idle buffers by length
	stats ArenaStats
}

// ArenaStats counts an Arena's buffers.
type ArenaStats struct {
	Reused    int64 // results written into recycled buffers
	Allocated int64 // results that needed a new buffer
	IdleBytes int64 // memory of the idle buffers now
}

// Stats returns the counts so far.
func (a *Arena) Stats() ArenaStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Clear drops every idle buffer (to the garbage collector), for a program
// that keeps a model loaded but will not run it for a while. Passes in
// flight are not disturbed: what they give back later is kept again. A
// nil Arena has nothing to clear.
func (a *Arena) Clear() {
	if a != nil {
		a.trim(nil)
	}
}

// get returns a buffer of n values, recycled if one is idle; dirty says
// it is recycled and holds an earlier result (a fresh one is zero).
func (a *Arena) get(n int) (b []float32, dirty bool) {
	a.mu.Lock()
	if l := a.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		a.free[n] = l[:len(l)-1]
		a.stats.Reused++
		a.stats.IdleBytes -= 4 * int64(n)
		a.mu.Unlock()
		return b, true
	}
	a.stats.Allocated++
	a.mu.Unlock()
	b = make([]float32, n)
	hugepages.Advise(b)
	return b, false
}

// clearGrain is the smallest buffer (in values) worth zeroing on several
// threads: 1 MiB.
const clearGrain = 1 << 18

// clearOn zeroes b, split over be's threads where b is large. Zeroing the
// recycled results on one thread was about a seventh of a 256x256 UNet
// step's serial time (README, "Where the serial time goes").
func clearOn(be backend.Backend, b []float32) {
	if be == nil || len(b) < 2*clearGrain || be.Threads() < 2 {
		clear(b)
		return
	}
	be.Parallel(len(b), func(lo, hi int) { clear(b[lo:hi]) })
}

// put makes bufs idle.
func (a *Arena) put(bufs [][]float32) {
	if len(bufs) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.free == nil {
		a.free = map[int][][]float32{}
	}
	for _, b := range bufs {
		a.free[len(b)] = append(a.free[len(b)], b)
		a.stats.IdleBytes += 4 * int64(len(b))
	}
}

// trim drops the idle buffers whose length is not in used.
func (a *Arena) trim(used map[int]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, l := range a.free {
		if !used[n] {
			a.stats.IdleBytes -= 4 * int64(n) * int64(len(l))
			delete(a.free, n)
		}
	}
}

// flowOutputs is a Flow's ops.Outputs: it lends buffers from the arena and
// records them, so the Flow can give back the dead ones.
type flowOutputs struct {
	a     *Arena
	be    backend.Backend // zeroes the recycled buffers (nil: one thread)
	mu    sync.Mutex      // ops may run on other goroutines (gradient graphs)
	owned [][]float32
	used  map[int]bool // lengths requested
	off   bool         // a gradient graph may hold results: recycle nothing
}

func (o *flowOutputs) Output(n int) []float32 {
	o.mu.Lock()
	if o.off || n == 0 {
		o.mu.Unlock()
		return nil // the operator allocates; the buffer is never recycled
	}
	b, dirty := o.a.get(n)
	o.owned = append(o.owned, b)
	o.used[n] = true
	o.mu.Unlock()
	// Only the operator that asked for b writes it until the flow gives
	// it back, so it is zeroed outside the lock.
	if dirty {
		clearOn(o.be, b)
	}
	return b
}

// release gives back the buffers lent since mark, except those under the
// kept tensors, which stay recorded (they may be released by an outer
// scope), and those under the dropped ones, which are forgotten.
func (o *flowOutputs) release(mark int, keep, forget []tensor.Tensor) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.off || mark > len(o.owned) {
		return
	}
	var back [][]float32
	kept := o.owned[:mark]
	for _, b := range o.owned[mark:] {
		switch {
		case under(b, keep):
			kept = append(kept, b)
		case under(b, forget):
		default:
			back = append(back, b)
		}
	}
	clear(o.owned[len(kept):]) // no stale references to given-back buffers
	o.owned = kept
	o.a.put(back)
}

// free gives back the buffers under ts (recorded ones only).
func (o *flowOutputs) free(ts []tensor.Tensor) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.off {
		return
	}
	var back [][]float32
	kept := o.owned[:0]
	for _, b := range o.owned {
		if under(b, ts) {
			back = append(back, b)
		} else {
			kept = append(kept, b)
		}
	}
	clear(o.owned[len(kept):])
	o.owned = kept
	o.a.put(back)
}

// disable stops recycling: every buffer lent so far is forgotten (left to
// the garbage collector) and operators allocate their own from now on.
func (o *flowOutputs) disable() {
	o.mu.Lock()
	o.off, o.owned = true, nil
	o.mu.Unlock()
}

// under reports whether b is the buffer of one of ts.
func under(b []float32, ts []tensor.Tensor) bool {
	if len(b) == 0 {
		return false
	}
	for _, t := range ts {
		if t.Valid() {
			if d := t.Data(); len(d) > 0 && &d[0] == &b[0] {
				return true
			}
		}
	}
	return false
}
