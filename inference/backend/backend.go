// Package backend is the seam between model code and the machine: the few
// kernels that everything else is built from (GEMM and a parallel loop).
// The CPU backend is the default; a Metal backend can be added under a
// darwin build tag without touching model code.
package backend

// Backend runs the hot kernels. Implementations are safe for concurrent use.
type Backend interface {
	// Name says which implementation runs, e.g. "cpu/openblas".
	Name() string

	// Gemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
	// where op(A) is [m, k], op(B) is [k, n] and C is [m, n]. op(X) is X or
	// its transpose. lda, ldb, ldc are the row strides of A, B, C as stored.
	// When beta is 0, C is only written (NaN garbage in it is ignored).
	// Gemm itself uses up to Threads() threads, so calling it from inside
	// Parallel oversubscribes the cores unless the work is split instead.
	Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
		b []float32, ldb int, beta float32, c []float32, ldc int)

	// Threads is the number of worker threads kernels use.
	Threads() int

	// SetThreads sets the number of worker threads (at least 1).
	SetThreads(n int)

	// Parallel splits [0, n) into at most Threads() contiguous chunks and
	// runs fn on each, returning when all are done.
	Parallel(n int, fn func(lo, hi int))
}

// HalfGemmer is implemented by backends that multiply a binary16 (IEEE
// half precision) operand directly, widening its elements to float32 as
// they are packed: float16 weights used in place then need no float32
// copy. The results are Gemm's on the widened operand.
type HalfGemmer interface {
	// GemmHalfA is Gemm with A stored as binary16.
	GemmHalfA(transA, transB bool, m, n, k int, alpha float32, a []uint16, lda int,
		b []float32, ldb int, beta float32, c []float32, ldc int)
	// GemmHalfB is Gemm with B stored as binary16.
	GemmHalfB(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
		b []uint16, ldb int, beta float32, c []float32, ldc int)
	// HalfGemmFast reports whether the two are at least as fast as
	// converting the operand and calling Gemm (false where Gemm is a
	// platform BLAS faster than the backend's own kernels).
	HalfGemmFast() bool
}

// APacker is implemented by backends that can pack a GEMM's A operand once
// for several calls that share it (the transformed filters of a Winograd
// convolution meet every block of tiles); Gemm repacks it on every call.
type APacker interface {
	// PackedASize is the number of floats PackA writes for an op(A) of
	// [m, k], or 0 when the backend cannot pack (its Gemm runs a library
	// that packs by itself): then the caller uses Gemm.
	PackedASize(m, k int) int

	// PackedARows is the row alignment of PackA's row ranges.
	PackedARows() int

	// PackA packs rows [i0, i1) of an op(A) of [m, k] into dst, the whole
	// packed matrix (PackedASize(m, k) floats): a holds those rows only,
	// op(a) [i1-i0, k] with stride lda (op is the transpose when transA).
	// i0 is a multiple of PackedARows(), and i1 too unless it is m. Ranges
	// may be packed in any order, concurrently; PackA runs on the calling
	// goroutine only.
	PackA(dst []float32, transA bool, m, k, i0, i1 int, a []float32, lda int)

	// GemmPackedA is Gemm with op(A) [m, k] read from pa as PackA packed
	// it: C = alpha*op(A)*op(B) + beta*C, on Threads() threads.
	GemmPackedA(pa []float32, transB bool, m, n, k int, alpha float32,
		b []float32, ldb int, beta float32, c []float32, ldc int)
}
