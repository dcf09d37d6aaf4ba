//go:build cgo && !purego && (linux || darwin)

package blas

/*
#cgo linux LDFLAGS: -lopenblas
#cgo darwin CFLAGS: -DACCELERATE_NEW_LAPACK
#cgo darwin LDFLAGS: -framework Accelerate

#ifdef __APPLE__
#include <Accelerate/Accelerate.h>
#define PS_LIB "accelerate"
// Accelerate sizes its own thread pool; the thread count is advisory.
#define PS_GO_THREADS 0
static void ps_set_threads(int n) { (void)n; }
static const char *ps_core(void) { return ""; }
#else
#include <cblas.h>
#define PS_LIB "openblas"
// Sgemm threads through goroutines, running OpenBLAS on one thread.
#define PS_GO_THREADS 1
// Declared here in case the installed cblas.h lacks the OpenBLAS extensions.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
static const char *ps_core(void) { return openblas_get_corename(); }
static void ps_set_threads(int n) {
	if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
}
#endif

static const char *ps_lib(void) { return PS_LIB; }

// ps_sgemm sets the thread count and runs one row-major SGEMM, so a Go call
// costs one cgo transition.
static void ps_sgemm(int threads, int transA, int transB, int m, int n, int k,
		float alpha, const float *a, int lda, const float *b, int ldb,
		float beta, float *c, int ldc) {
	ps_set_threads(threads);
	cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
		transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
		beta, c, ldc);
}
*/
import "C"

import (
	"unsafe"

	"github.com/perfusion-studio/perfusion/inference/backend/internal/crew"
)

// Available reports whether this build links a platform BLAS.
const Available = true

// Name is the library's short name: "openblas" or "accelerate".
func Name() string { return C.GoString(C.ps_lib()) }

// Core names the kernels the library chose for this CPU when it loaded,
// as OpenBLAS reports them (e.g. "Haswell", "SkylakeX"; OpenBLAS reads
// OPENBLAS_CORETYPE then); "" for Accelerate.
func Core() string {
	p := C.ps_core()
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C (row-major) with the
// platform BLAS on the given number of threads. The caller checks sizes;
// m, n or k of 0 are handled here.
//
// With OpenBLAS the threads are goroutines: the library runs on one thread
// (its process-wide count is set to 1) and Sgemm splits C into threads
// independent parts, one SGEMM each, on as many goroutines. OpenBLAS's own
// threads wait for each other and for work by spinning on sched_yield; on a
// process that also runs Go work beside its GEMMs (a training pass's
// backward runs operators concurrently) or on a busy machine, a thread
// descheduled mid-GEMM left the others spinning, seconds of CPU per
// training sample. Split parts wait for nothing: a goroutine that finishes
// early blocks without spinning, and the Go scheduler places them. Each
// part packs the operand it shares with the others afresh: the split runs
// along the longer side of C, so that operand is the smaller one.
func Sgemm(threads int, cr *crew.Crew, transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		// BLAS would scale C by beta; keep the beta==0 rule (no NaN carry).
		scale(m, n, beta, c, ldc)
		return
	}
	if !goThreads {
		sgemm(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	parts := 1
	if threads > 1 && m*n*k >= splitMin {
		parts = threads
	}
	sgemmParts(cr, parts, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// goThreads says whether Sgemm threads through goroutines (OpenBLAS) or
// leaves the threads to the library (Accelerate sizes its own pool).
const goThreads = C.PS_GO_THREADS != 0

// splitMin is the least m*n*k that Sgemm splits: OpenBLAS's own threshold
// for threading (65536 times GEMM_MULTITHREAD_THRESHOLD, 4), below which a
// goroutine and a second packing cost more than they save.
const splitMin = 1 << 18

// splitAlign is the granularity of the parts' rows or columns, a multiple
// of the library's register tiles, so that only the last part has a
// partial tile.
const splitAlign = 16

// sgemmParts runs C = alpha*op(A)*op(B) + beta*C as at most parts
// single-threaded SGEMMs on the caller and cr's helpers, each on a band of
// C's rows (when C has at least as many rows as columns) or columns.
func sgemmParts(cr *crew.Crew, parts int, transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	rows := m >= n
	side := n
	if rows {
		side = m
	}
	band := (side + parts - 1) / parts
	band = (band + splitAlign - 1) / splitAlign * splitAlign
	if parts <= 1 || band >= side {
		sgemm(1, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	part := func(lo, hi int) {
		if rows {
			ao := lo * lda // op(A)'s rows lo..hi: A's rows, or its columns
			if transA {
				ao = lo
			}
			sgemm(1, transA, transB, hi-lo, n, k, alpha, a[ao:], lda, b, ldb, beta, c[lo*ldc:], ldc)
			return
		}
		bo := lo // op(B)'s columns lo..hi: B's columns, or its rows
		if transB {
			bo = lo * ldb
		}
		sgemm(1, transA, transB, m, hi-lo, k, alpha, a, lda, b[bo:], ldb, beta, c[lo:], ldc)
	}
	cr.Run(parts-1, (side+band-1)/band, func(i int) { part(i*band, min((i+1)*band, side)) })
}

// sgemm is one library call on the given number of threads (OpenBLAS's
// count is process-wide: concurrent callers asking for different counts
// take turns setting it).
func sgemm(threads int, transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	C.ps_sgemm(C.int(threads), cbool(transA), cbool(transB), C.int(m), C.int(n), C.int(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.int(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc))
}

func cbool(v bool) C.int {
	if v {
		return 1
	}
	return 0
}

// scale sets C = beta*C, writing zeros when beta is 0.
func scale(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}
