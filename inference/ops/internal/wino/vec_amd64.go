package wino

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// hasAVX512 is set once at init from CPUID and never changed.
var hasAVX512 = x86.HasAVX512()

// inputRowAVX512 is InputRow on 16*groups tiles, in vec_amd64.s.
//
//go:noescape
func inputRowAVX512(v *float32, ldk int, r0, r1, r2, r3 *float32, groups int)

// outputRowAVX512 is OutputRow on 16*groups tiles whose 32*groups columns
// all exist, in vec_amd64.s; two says whether y1 is written.
//
//go:noescape
func outputRowAVX512(y0, y1, m *float32, ldk int, groups int, add, two bool)

// inputRowVec runs the AVX-512 kernel on the whole groups of 16 tiles and
// returns how many tiles it did.
func inputRowVec(v []float32, ldk int, r0, r1, r2, r3 []float32, n int) int {
	groups := n / 16
	if !hasAVX512 || groups == 0 {
		return 0
	}
	done := 16 * groups
	// The kernel reads columns up to 2*done+1 of each row and writes
	// columns up to done-1 of each position.
	w := 2*done + 2
	_, _, _, _ = r0[w-1], r1[w-1], r2[w-1], r3[w-1]
	_ = v[15*ldk+done-1]
	inputRowAVX512(&v[0], ldk, &r0[0], &r1[0], &r2[0], &r3[0], groups)
	return done
}

// outputRowVec runs the AVX-512 kernel on the groups of 16 tiles whose 32
// output columns all exist and returns how many tiles it did.
func outputRowVec(y0, y1 []float32, wo int, m []float32, ldk int, n int, add bool) int {
	groups := min(n, wo/2) / 16
	if !hasAVX512 || groups == 0 {
		return 0
	}
	done := 16 * groups
	_ = m[15*ldk+done-1]
	_ = y0[2*done-1]
	p1 := &y0[0]
	if y1 != nil {
		_ = y1[2*done-1]
		p1 = &y1[0]
	}
	outputRowAVX512(&y0[0], p1, &m[0], ldk, groups, add, y1 != nil)
	return done
}
