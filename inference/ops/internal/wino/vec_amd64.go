package wino

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// The vector kernels this CPU runs, set once at init from CPUID and never
// changed (tests turn them off to reach the Go loops).
var (
	hasAVX512 = x86.HasAVX512()
	hasAVX2   = x86.HasAVX2FMA()
)

// inputRowAVX512 is InputRow on 16*groups tiles, in vec_amd64.s.
//
//go:noescape
func inputRowAVX512(v *float32, ldk int, r0, r1, r2, r3 *float32, groups int)

// outputRowAVX512 is OutputRow on 16*groups tiles whose 32*groups columns
// all exist, in vec_amd64.s; two says whether y1 is written.
//
//go:noescape
func outputRowAVX512(y0, y1, m *float32, ldk int, groups int, add, two bool)

// inputRowAVX2 is InputRow on 8*groups tiles, in vec_avx2_amd64.s.
//
//go:noescape
func inputRowAVX2(v *float32, ldk int, r0, r1, r2, r3 *float32, groups int)

// outputRowAVX2 is OutputRow on 8*groups tiles whose 16*groups columns all
// exist, in vec_avx2_amd64.s; two says whether y1 is written.
//
//go:noescape
func outputRowAVX2(y0, y1, m *float32, ldk int, groups int, add, two bool)

// inputRowVec runs the vector kernels on the whole groups of 16 tiles
// (AVX-512), then of 8 (AVX2), and returns how many tiles they did.
func inputRowVec(v []float32, ldk int, r0, r1, r2, r3 []float32, n int) int {
	done := 0
	if hasAVX512 && n >= 16 {
		done = inputRowGroups(16, v, ldk, r0, r1, r2, r3, n)
	}
	if hasAVX2 && n-done >= 8 {
		done += inputRowGroups(8, v[done:], ldk, r0[2*done:], r1[2*done:], r2[2*done:], r3[2*done:], n-done)
	}
	return done
}

// inputRowGroups runs the kernel of size tiles (16: AVX-512, 8: AVX2) on
// the whole groups of n and returns how many tiles it did. (Direct calls,
// not a func value, keep the kernels' noescape.)
func inputRowGroups(size int, v []float32, ldk int, r0, r1, r2, r3 []float32, n int) int {
	groups := n / size
	done := size * groups
	// The kernel reads columns up to 2*done+1 of each row and writes
	// columns up to done-1 of each position.
	w := 2*done + 2
	_, _, _, _ = r0[w-1], r1[w-1], r2[w-1], r3[w-1]
	_ = v[15*ldk+done-1]
	if size == 16 {
		inputRowAVX512(&v[0], ldk, &r0[0], &r1[0], &r2[0], &r3[0], groups)
	} else {
		inputRowAVX2(&v[0], ldk, &r0[0], &r1[0], &r2[0], &r3[0], groups)
	}
	return done
}

// outputRowVec runs the vector kernels on the groups of 16 tiles
// (AVX-512), then of 8 (AVX2), whose output columns all exist, and
// returns how many tiles they did.
func outputRowVec(y0, y1 []float32, wo int, m []float32, ldk int, n int, add bool) int {
	n = min(n, wo/2) // tiles whose two columns exist
	done := 0
	if hasAVX512 && n >= 16 {
		done = outputRowGroups(16, y0, y1, m, ldk, n, add)
	}
	if hasAVX2 && n-done >= 8 {
		if y1 != nil {
			y1 = y1[2*done:]
		}
		done += outputRowGroups(8, y0[2*done:], y1, m[done:], ldk, n-done, add)
	}
	return done
}

// outputRowGroups runs the kernel of size tiles (16: AVX-512, 8: AVX2) on
// the whole groups of n, all of whose columns exist, and returns how many
// tiles it did.
func outputRowGroups(size int, y0, y1 []float32, m []float32, ldk int, n int, add bool) int {
	groups := n / size
	done := size * groups
	_ = m[15*ldk+done-1]
	_ = y0[2*done-1]
	p1 := &y0[0]
	if y1 != nil {
		_ = y1[2*done-1]
		p1 = &y1[0]
	}
	if size == 16 {
		outputRowAVX512(&y0[0], p1, &m[0], ldk, groups, add, y1 != nil)
	} else {
		outputRowAVX2(&y0[0], p1, &m[0], ldk, groups, add, y1 != nil)
	}
	return done
}
