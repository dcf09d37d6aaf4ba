//go:build cgo && !purego && (linux || darwin)

package blas

import (
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

func TestName(t *testing.T) {
	if n := Name(); n != "openblas" && n != "accelerate" {
		t.Errorf("Name() = %q, want openblas or accelerate", n)
	}
}
