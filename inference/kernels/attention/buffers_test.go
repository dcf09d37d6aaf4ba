package attention

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// poisoned is a Buffers that lends every buffer full of NaN, the worst
// left-over contents a reused buffer can have: a value the kernels read
// without writing it first spreads into the results. It also counts what
// is out, to check that every buffer comes back.
type poisoned struct {
	mu   sync.Mutex
	free [][]float32
	out  int // buffers lent and not yet returned
	gets int
}

func (b *poisoned) Get(n int) []float32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.out++
	b.gets++
	var s []float32
	for i, f := range b.free {
		if cap(f) >= n {
			s = f[:n]
			b.free = append(b.free[:i], b.free[i+1:]...)
			break
		}
	}
	if s == nil {
		s = make([]float32, n, n+13) // a capacity beyond n, as pools give
	}
	nan := float32(math.NaN())
	for i := range s[:cap(s)] {
		s[:cap(s)][i] = nan
	}
	return s
}

func (b *poisoned) Put(s []float32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.out--
	b.free = append(b.free, s)
}

// testBuffers is nil (the allocating path) for one thread and a poisoned
// Buffers otherwise, which must have every buffer back when the test ends.
func testBuffers(t *testing.T, threads int) Buffers {
	if threads == 1 {
		return nil
	}
	b := new(poisoned)
	t.Cleanup(func() {
		if b.out != 0 || b.gets == 0 {
			t.Errorf("buffers: %d of %d not returned", b.out, b.gets)
		}
	})
	return b
}

// One Buffers serves calls of several shapes in turn, forward and
// backward, each reusing what the others left (NaN-filled again on each
// Get): the results are those of fresh zeroed memory, bit for bit. With
// more than one worker dQ is the exception: it sums the key blocks' parts
// in the order their tasks take its lock, which varies from run to run, so
// there it may differ in the last bits (a value read from a poisoned buffer
// would make it NaN).
func TestReusedBuffersGiveSameResults(t *testing.T) {
	kn := pick()
	for _, threads := range []int{1, 3} {
		buf := testBuffers(t, threads)
		for round := range 2 {
			for i, p := range cases(true) {
				q, k, v := inputs(p, uint64(i))
				nq, nk, nv, no := p.lens()
				dout := randn(rand.New(rand.NewPCG(uint64(i), 9)), no, 1)
				run := func(buf Buffers) (res [5][]float32) {
					out, lse := make([]float32, no), make([]float32, p.LSELen())
					dq, dk, dv := make([]float32, nq), make([]float32, nk), make([]float32, nv)
					if err := forward(kn, pool(threads), buf, p, q, k, v, out, lse); err != nil {
						t.Fatal(err)
					}
					if err := backward(kn, pool(threads), buf, p, q, k, v, out, lse, dout, dq, dk, dv); err != nil {
						t.Fatal(err)
					}
					return [5][]float32{out, lse, dq, dk, dv}
				}
				want, got := run(nil), run(buf)
				for j, what := range []string{"out", "lse", "dq", "dk", "dv"} {
					var big float64 // the largest magnitude, for dq's rounding
					for _, w := range want[j] {
						big = math.Max(big, math.Abs(float64(w)))
					}
					for x, w := range want[j] {
						g := got[j][x]
						same := math.Float32bits(g) == math.Float32bits(w)
						if what == "dq" && threads > 1 {
							same = math.Abs(float64(g-w)) <= 1e-5*(math.Abs(float64(w))+big)
						}
						if !same {
							t.Fatalf("threads %d, round %d, %s: %s[%d] = %v with reused buffers, %v with fresh ones",
								threads, round, name(p), what, x, g, w)
						}
					}
				}
			}
		}
	}
}
