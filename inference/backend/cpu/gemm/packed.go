package gemm

import (
	"fmt"
	"sync"
)

// Packing A once: when several GEMMs share op(A) (the transformed filters
// of a Winograd convolution meet every block of tiles), Sgemm would repack
// it on every call and on every thread that covers its rows. PackA does it
// once, in the layout block reads: for each kc block of k (pc = 0, kc,
// ...), the ceil(m/mr) row panels of [kcBlock, mr], rows past m zero.

// PackedSize is the number of floats PackA writes for an op(A) of [m, k].
func (e *Engine) PackedSize(m, k int) int {
	kn := e.kernel()
	return roundUp(m, kn.mr) * k
}

// PackedRows is the row alignment of PackA's row ranges (the kernel's mr).
func (e *Engine) PackedRows() int { return e.kernel().mr }

// PackA packs rows [i0, i1) of an op(A) of [m, k] into dst, the whole
// packed matrix (at least PackedSize(m, k) floats), for SgemmPacked: a
// holds those rows only, op(a) [i1-i0, k] with stride lda (op is the
// transpose when transA). i0 must be a multiple of PackedRows(), and i1
// too unless it is m, so that ranges fill whole panels; packing every row
// once, in any order or concurrently, packs the matrix. It panics if a
// range or slice does not fit.
func (e *Engine) PackA(dst []float32, transA bool, m, k, i0, i1 int, a []float32, lda int) {
	kn := e.kernel()
	mr := kn.mr
	if i0 == i1 && i0 >= 0 && i1 <= m {
		return // nothing to pack
	}
	if i0 < 0 || i0 > i1 || i1 > m || i0%mr != 0 || (i1%mr != 0 && i1 != m) {
		panic(fmt.Sprintf("gemm: PackA rows [%d, %d) of %d: want multiples of %d", i0, i1, m, mr))
	}
	if err := checkLen("A", transA, i1-i0, k, len(a), lda); err != nil {
		panic(err)
	}
	mp := roundUp(m, mr)
	dst = dst[:mp*k]
	A := operand{data: a, ld: lda, trans: transA}
	for pc := 0; pc < k; pc += kn.kc {
		kc := min(kn.kc, k-pc)
		off := mp*pc + i0*kc
		A.packA(dst[off:off+roundUp(i1-i0, mr)*kc], 0, i1-i0, pc, kc, mr)
	}
}

// SgemmPacked computes C = alpha*op(A)*op(B) + beta*C like Sgemm, with
// op(A) [m, k] taken from pa as PackA packed it (on an Engine with the same
// kernel). It panics if a slice is too short for the shapes.
func (e *Engine) SgemmPacked(threads int, pa []float32, transB bool, m, n, k int, alpha float32,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	kn := e.kernel()
	if len(pa) < roundUp(m, kn.mr)*k {
		panic("gemm: packed A shorter than PackedSize(m, k)")
	}
	if err := checkLen("B", transB, k, n, len(b), ldb); err != nil {
		panic(err)
	}
	if err := checkLen("C", false, m, n, len(c), ldc); err != nil {
		panic(err)
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	B := operand{data: b, ld: ldb, trans: transB}
	src := aPacked{pa: pa, m: m}
	tm, tn := split(threads, m, n, k, kn)
	if tm*tn == 1 {
		block(e, kn, src, B, 0, m, 0, n, k, alpha, beta, c, ldc)
		return
	}
	var wg sync.WaitGroup
	for ti := range tm {
		i0, i1 := chunk(m, tm, ti, kn.mr)
		for tj := range tn {
			j0, j1 := chunk(n, tn, tj, kn.nr)
			if i0 == i1 || j0 == j1 {
				continue
			}
			wg.Go(func() { block(e, kn, src, B, i0, i1, j0, j1, k, alpha, beta, c, ldc) })
		}
	}
	wg.Wait()
}

// aPacked is an op(A) that PackA has already packed.
type aPacked struct {
	pa []float32
	m  int // rows of op(A)
}

// blockA implements aSource: the block is read in place.
func (a aPacked) blockA(_ []float32, i0, mc, p0, kc, mr int) []float32 {
	off := roundUp(a.m, mr)*p0 + i0*kc
	return a.pa[off : off+roundUp(mc, mr)*kc]
}
