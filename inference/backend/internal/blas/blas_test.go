//go:build cgo && !purego && (linux || darwin)

package blas

import (
	"os"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/internal/gemmtest"
)

func TestSgemm(t *testing.T) {
	shapes := gemmtest.Shapes
	if testing.Short() {
		shapes = gemmtest.ShortShapes
	}
	for _, threads := range []int{1, 2} {
		gemmtest.Run(t, func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
			b []float32, ldb int, beta float32, c []float32, ldc int) {
			Sgemm(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}, shapes)
	}
}

// TestSgemmParts checks Sgemm's split into parts on the shapes, most of
// them below the size Sgemm splits from, along rows and along columns.
func TestSgemmParts(t *testing.T) {
	if !goThreads {
		t.Skip("the library threads its GEMMs itself")
	}
	for _, parts := range []int{2, 3} {
		gemmtest.Run(t, func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
			b []float32, ldb int, beta float32, c []float32, ldc int) {
			sgemmParts(parts, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}, gemmtest.Shapes)
	}
}

func TestName(t *testing.T) {
	if n := Name(); n != "openblas" && n != "accelerate" {
		t.Errorf("Name() = %q, want openblas or accelerate", n)
	}
}

// TestCore checks that OpenBLAS names the kernels it chose, and that it
// honours OPENBLAS_CORETYPE when that names a known core.
func TestCore(t *testing.T) {
	core := Core()
	t.Logf("%s core: %q (OPENBLAS_CORETYPE=%q)", Name(), core, os.Getenv("OPENBLAS_CORETYPE"))
	if Name() != "openblas" {
		return
	}
	if core == "" {
		t.Fatal("Core() is empty for OpenBLAS")
	}
	if want := os.Getenv("OPENBLAS_CORETYPE"); want != "" && !strings.EqualFold(want, core) {
		t.Logf("OPENBLAS_CORETYPE=%s but OpenBLAS runs %s (a core this CPU lacks, or a build without it)", want, core)
	}
}
