//go:build !amd64

package wino

// No vector kernels on this target (variables, as on amd64, so that tests
// can set them).
var hasAVX512, hasAVX2 = false, false

// inputRowVec transforms a prefix of the row with vector instructions and
// returns how many tiles it did: none on this target.
func inputRowVec(v []float32, ldk int, r0, r1, r2, r3 []float32, n int) int { return 0 }

// outputRowVec is OutputRow on a prefix of the row with vector
// instructions, returning how many tiles it did: none on this target.
func outputRowVec(y0, y1 []float32, wo int, m []float32, ldk int, n int, add bool) int { return 0 }
