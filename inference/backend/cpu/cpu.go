// Package cpu is the default backend: GEMM and a parallel loop on the CPU.
//
// Gemm runs the fastest GEMM the build and the CPU have, by a fixed rule:
// on a CPU with AVX-512 the pure-Go GEMM of package gemm with its AVX-512
// micro-kernel (OpenBLAS often runs its AVX2 kernels there: Debian's 0.3.21
// picks them on AMD Zen 4, and OPENBLAS_CORETYPE may force them); otherwise
// the platform BLAS through cgo when the build has it (OpenBLAS on Linux,
// Accelerate on macOS; see internal/blas); otherwise the pure-Go GEMM, as in
// builds with CGO_ENABLED=0 or -tags purego. All give the same results
// within float32 rounding.
package cpu

import (
	"sync/atomic"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu/gemm"
	"github.com/perfusion-studio/perfusion/inference/backend/internal/blas"
	"github.com/perfusion-studio/perfusion/inference/backend/internal/crew"
	"github.com/perfusion-studio/perfusion/inference/internal/x86"
)

// CPU implements backend.Backend. Create it with New. Its parallel loops
// and GEMMs run on the caller and on helper goroutines that linger for
// crew.DefaultLinger after each, so it needs no Close.
type CPU struct {
	threads atomic.Int32
	useBLAS bool        // Gemm calls the platform BLAS
	pure    gemm.Engine // Gemm's engine when useBLAS is false
	crew    *crew.Crew  // helpers of Parallel and of the pure-Go GEMM
}

// newCPU returns a CPU on DefaultThreads() threads.
func newCPU(useBLAS bool) *CPU {
	c := &CPU{useBLAS: useBLAS, crew: crew.New(crew.DefaultLinger)}
	c.pure.SetCrew(c.crew)
	c.SetThreads(DefaultThreads())
	return c
}

var _ backend.Backend = (*CPU)(nil)

// New returns a CPU backend using DefaultThreads() threads, with the
// platform BLAS when the build links one and the CPU lacks AVX-512 (see the
// package doc).
func New() *CPU {
	return newCPU(blas.Available && !x86.HasAVX512())
}

// NewBLAS returns a CPU backend using DefaultThreads() threads that always
// runs the platform BLAS; ok is false when the build links none.
func NewBLAS() (c *CPU, ok bool) {
	return newCPU(blas.Available), blas.Available
}

// NewGo returns a CPU backend using DefaultThreads() threads that always
// runs the pure-Go GEMM, even in builds that link a platform BLAS.
func NewGo() *CPU {
	return newCPU(false)
}

// Name says which implementation runs: "cpu/openblas", "cpu/accelerate", or
// "cpu/go-" followed by the pure-Go micro-kernel, e.g. "cpu/go-avx2-6x16".
func (c *CPU) Name() string {
	if c.useBLAS {
		return "cpu/" + blas.Name()
	}
	return "cpu/go-" + c.pure.Kernel()
}

// Threads is the number of worker threads.
func (c *CPU) Threads() int { return int(c.threads.Load()) }

// SetThreads sets the number of worker threads (at least 1). With OpenBLAS
// a Gemm call splits its work across as many goroutines, each running the
// library on one thread (see internal/blas).
func (c *CPU) SetThreads(n int) {
	if n < 1 {
		n = 1
	}
	c.threads.Store(int32(n))
}

// Parallel splits [0, n) into at most Threads() contiguous chunks and runs
// fn on each, on the caller and the crew's helpers.
func (c *CPU) Parallel(n int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	t := min(c.Threads(), n)
	if t <= 1 {
		fn(0, n)
		return
	}
	chunk := (n + t - 1) / t
	c.crew.Run(t-1, (n+chunk-1)/chunk, func(i int) {
		lo := i * chunk
		fn(lo, min(lo+chunk, n))
	})
}

// GemmHalfA implements backend.HalfGemmer with the pure-Go kernels.
func (c *CPU) GemmHalfA(transA, transB bool, m, n, k int, alpha float32, a []uint16, lda int,
	b []float32, ldb int, beta float32, cm []float32, ldc int) {
	c.pure.SgemmHalfA(c.Threads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
}

// GemmHalfB implements backend.HalfGemmer with the pure-Go kernels.
func (c *CPU) GemmHalfB(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []uint16, ldb int, beta float32, cm []float32, ldc int) {
	c.pure.SgemmHalfB(c.Threads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
}

// HalfGemmFast implements backend.HalfGemmer: the half GEMMs run the
// pure-Go kernels, the fastest here unless a BLAS is chosen for Gemm.
func (c *CPU) HalfGemmFast() bool { return !c.useBLAS }

// Gemm computes C = alpha*op(A)*op(B) + beta*C (row-major) on Threads()
// threads; see backend.Backend. When beta is 0, C is only written. It panics
// if a stride or slice is too short for the shapes.
func (c *CPU) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, cm []float32, ldc int) {
	if !c.useBLAS {
		c.pure.Sgemm(c.Threads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
		return
	}
	// C code cannot bounds-check: check here, panicking like the Go path.
	if err := gemm.CheckArgs(transA, transB, m, n, k, a, lda, b, ldb, cm, ldc); err != nil {
		panic(err)
	}
	blas.Sgemm(c.Threads(), c.crew, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, cm, ldc)
}

var _ backend.APacker = (*CPU)(nil)

// PackedASize implements backend.APacker: 0 (no packing) when Gemm calls the
// platform BLAS.
func (c *CPU) PackedASize(m, k int) int {
	if c.useBLAS {
		return 0
	}
	return c.pure.PackedSize(m, k)
}

// PackedARows implements backend.APacker.
func (c *CPU) PackedARows() int { return c.pure.PackedRows() }

// PackA implements backend.APacker. It panics when Gemm calls the platform
// BLAS (PackedASize is 0), or a range or slice does not fit.
func (c *CPU) PackA(dst []float32, transA bool, m, k, i0, i1 int, a []float32, lda int) {
	if c.useBLAS {
		panic("cpu: PackA on a backend that runs the platform BLAS")
	}
	c.pure.PackA(dst, transA, m, k, i0, i1, a, lda)
}

// GemmPackedA implements backend.APacker on Threads() threads.
func (c *CPU) GemmPackedA(pa []float32, transB bool, m, n, k int, alpha float32,
	b []float32, ldb int, beta float32, cm []float32, ldc int) {
	if c.useBLAS {
		panic("cpu: GemmPackedA on a backend that runs the platform BLAS")
	}
	c.pure.SgemmPacked(c.Threads(), pa, transB, m, n, k, alpha, b, ldb, beta, cm, ldc)
}
