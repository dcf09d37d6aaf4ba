package ops

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
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
				call := func() {
					if _, err := e.Attention(q, k, v, s.H, float32(1/math.Sqrt(float64(s.Dh))), s.causal); err != nil {
						t.Fatal(err)
					}
				}
				call() // warm-up: fills the pools
				objects := testing.AllocsPerRun(20, call)
				// AllocsPerRun changed GOMAXPROCS, which makes a sync.Pool
				// drop what it holds once: one more warm-up call.
				call()
				const runs = 20
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				for range runs {
					call()
				}
				runtime.ReadMemStats(&m1)
				bytes := float64(m1.TotalAlloc-m0.TotalAlloc) / runs
				t.Logf("%.0f objects, %.0f bytes per call", objects, bytes)
				if objects > float64(c.maxObjects) || bytes > maxBytes {
					t.Errorf("a steady-state call allocates %.0f objects (at most %d) and %.0f bytes (at most %d)",
						objects, c.maxObjects, bytes, maxBytes)
				}
			})
		}
	}
}
