package attention

import (
	"math"
	"sync/atomic"
)

// Tile sizes (measured; larger key tiles amortise the per-row softmax work).
// Row counts of the product kernel's operands are padded to a multiple of
// its rows (kernels.mr: 6 for the Go and AVX2 sets, 8 for AVX-512), and
// column counts to a multiple of 8. So query blocks are multiples of 24;
// key blocks are columns, multiples of 8, and in Backward also rows, so
// multiples of 24 there. TestTileSizes checks these.
const (
	fwdQ = 96  // queries per forward task
	fwdK = 128 // keys per forward tile
	bwdQ = 48  // queries per backward tile
	bwdK = 96  // keys per backward task

	// waveFloats caps the packed keys/values (and, in Backward, queries and
	// gradients) of the heads processed together.
	waveFloats = 4 << 20
)

var negInf = float32(math.Inf(-1))

func ceilDiv(a, b int) int { return (a + b - 1) / b }
func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// waveHeads is how many (batch, head) pairs are packed and processed
// together: enough tasks to keep every worker busy, within waveFloats.
func waveHeads(bh, tasksPerHead, threads, floatsPerHead int) int {
	g := ceilDiv(4*threads, tasksPerHead)
	g = min(g, bh, max(1, waveFloats/floatsPerHead))
	return max(g, 1)
}

// runTasks runs do(w, t) for t in [0, n) on up to workers workers that
// take tasks in order as they free up (the causal mask makes tasks
// uneven). Worker w owns scratch[w].
func runTasks(r Runner, workers, n int, do func(w, t int)) {
	var next atomic.Int64
	r.Parallel(min(workers, n), func(lo, hi int) {
		for w := lo; w < hi; w++ {
			for {
				t := int(next.Add(1)) - 1
				if t >= n {
					break
				}
				do(w, t)
			}
		}
	})
}

// headRow gives the offset of token t of head h in batch b of a
// [B, T, H*D] tensor: its D values follow.
func headRow(b, t, h, tokens, heads, d int) int {
	return ((b*tokens+t)*heads + h) * d
}
