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
static void ps_set_threads(int n) { (void)n; }
static const char *ps_core(void) { return ""; }
#else
#include <cblas.h>
#define PS_LIB "openblas"
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

import "unsafe"

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
// m, n or k of 0 are handled here. OpenBLAS's thread count is process-wide:
// concurrent callers asking for different counts take turns setting it.
func Sgemm(threads int, transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		// BLAS would scale C by beta; keep the beta==0 rule (no NaN carry).
		scale(m, n, beta, c, ldc)
		return
	}
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
