//go:build !amd64

package gemm

// No vector packing off amd64 (variables, as on amd64, so that tests can
// set them).
var haveAVX512Pack, haveAVX2Pack = false, false

// interleaveFast has no vector version here: the caller packs everything.
func interleaveFast(dst []float32, stride, n int, data []float32, off, ld, kc int) int {
	return 0
}

// runsFast has no vector version here: the caller does it.
func runsFast(dst []float32, stride int, src []float32, ld, kc, w int) bool { return false }

// interleaveHalfFast has no vector version here.
func interleaveHalfFast(dst []float32, stride, n int, data []uint16, off, ld, kc int) int {
	return 0
}

// runsHalfFast has no vector version here.
func runsHalfFast(dst []float32, stride int, src []uint16, ld, kc, w int) bool { return false }
