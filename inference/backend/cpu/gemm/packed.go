package gemm

import "fmt"

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
	err := checkLen("B", transB, k, n, len(b), ldb)
	if err == nil {
		err = checkLen("C", false, m, n, len(c), ldc)
	}
	if len(pa) < roundUp(m, e.kernel().mr)*k {
		err = fmt.Errorf("gemm: packed A has %d floats, PackedSize(%d, %d) is %d", len(pa), m, k, roundUp(m, e.kernel().mr)*k)
	}
	checked(e, threads, m, n, k, alpha, aPacked{pa: pa, m: m}, operand{data: b, ld: ldb, trans: transB}, beta, c, ldc, err)
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
