package ops

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// reuse is an Outputs that lends the same buffer to every call of one
// size, as blocks.Arena does in a sampling loop once a step has run.
type reuse map[int][]float32

func (r reuse) Output(n int) []float32 {
	b, ok := r[n]
	if !ok {
		b = make([]float32, n)
		r[n] = b
	}
	clear(b)
	return b
}

// Attention in a sampling loop's steady state: after one call of a shape
// the next ones of the same shape allocate almost nothing. The working
// memory (packed keys and values, per-worker tiles) comes from the engine's
// scratch pool, the result from the lender. What remains are small
// objects: the operator and tensor headers, the loop closures and, per wave
// of heads, a task counter; with several threads also the backend's
// goroutine starts (a few objects each, two parallel loops a wave). The
// bounds leave room for those: 40 objects on one thread (23 to 33
// measured), 96 on three (29 to 65), and 8 KiB a call in both, far below
// the packed operands of even the smallest shape here (Tk·H·(Dh+Dv) floats,
// 26 KiB for the last; before pooling a call allocated 0.4 to 1 MB).
func TestAttentionSteadyStateAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make test runs this package short under the race detector, whose instrumentation allocates")
	}
	const maxBytes = 8 << 10
	for _, s := range []attnShape{
		{2, 256, 256, 8, 40, 40, false}, // SD1.x self-attention on a 16×16 latent, CFG batch
		{2, 256, 77, 8, 40, 40, false},  // its cross-attention to the prompt
		{1, 77, 77, 12, 64, 64, true},   // CLIP ViT-L text encoder
		{2, 100, 50, 3, 33, 20, false},  // odd sizes: padded tiles
	} {
		for _, c := range []struct{ threads, maxObjects int }{{1, 40}, {3, 96}} {
			t.Run(fmt.Sprintf("%v/threads%d", s, c.threads), func(t *testing.T) {
				q, k, v := attnInputs(s, 3, [3]bool{})
				e := NewEngine(cpu.New())
				e.B.SetThreads(c.threads)
				e = e.WithOutputs(reuse{})
				call := func() { // the first call fills the pools
					if _, err := e.Attention(q, k, v, s.H, float32(1/math.Sqrt(float64(s.Dh))), s.causal); err != nil {
						t.Fatal(err)
					}
				}
				objects, bytes := steadyBytes(call)
				t.Logf("%.0f objects, %.0f bytes per call", objects, bytes)
				if objects > float64(c.maxObjects) || bytes > maxBytes {
					t.Errorf("a steady-state call allocates %.0f objects (at most %d) and %.0f bytes (at most %d)",
						objects, c.maxObjects, bytes, maxBytes)
				}
			})
		}
	}
}

// steadyBytes returns the objects and bytes one call of fn allocates,
// after a warm-up call.
func steadyBytes(fn func()) (objects, bytes float64) {
	fn()
	objects = testing.AllocsPerRun(20, fn)
	fn() // AllocsPerRun changed GOMAXPROCS, which empties sync.Pools once
	const runs = 20
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&m1)
	return objects, float64(m1.TotalAlloc-m0.TotalAlloc) / runs
}

// Without a gradient graph the norms keep no per-row moments: what a call
// allocates does not grow with its rows. The bound, 1 KiB (about 650
// bytes measured), leaves room for the operator and tensor headers and the
// loop closure; the two float64 moments of the 8192 rows (or batch-group
// pairs) here, which both norms allocated before, take 128 KiB.
func TestNormsSteadyStateAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make test runs this package short under the race detector, whose instrumentation allocates")
	}
	const maxBytes = 1 << 10
	r := newRand(5)
	e := NewEngine(cpu.New())
	e.B.SetThreads(1)
	e = e.WithOutputs(reuse{})
	x := frozen(r, 2, 4096, 64) // [B, T, C]
	g, b := frozen(r, 64), frozen(r, 64)
	xc := frozen(r, 4, 2048, 8, 8) // [B, C, H, W]: 8192 (batch, group) pairs
	gc, bc := frozen(r, 2048), frozen(r, 2048)
	for name, fn := range map[string]func() (tensor.Tensor, error){
		"LayerNorm": func() (tensor.Tensor, error) { return e.LayerNorm(x, g, b, 1e-5) },
		"GroupNorm": func() (tensor.Tensor, error) { return e.GroupNorm(xc, 2048, gc, bc, 1e-5) },
	} {
		objects, bytes := steadyBytes(func() {
			if _, err := fn(); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %.0f objects, %.0f bytes per call", name, objects, bytes)
		if bytes > maxBytes {
			t.Errorf("%s: a steady-state call allocates %.0f bytes, want at most %d", name, bytes, maxBytes)
		}
	}
}
