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
