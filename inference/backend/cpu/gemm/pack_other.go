//go:build !amd64

package gemm

// haveAVX512Pack: no transposing pack off amd64.
const haveAVX512Pack = false

// interleaveFast has no vector version here: the caller packs everything.
func interleaveFast(dst []float32, stride, n int, data []float32, off, ld, kc int) int {
	return 0
}

// interleaveHalfFast has no vector version here.
func interleaveHalfFast(dst []float32, stride, n int, data []uint16, off, ld, kc int) int {
	return 0
}
