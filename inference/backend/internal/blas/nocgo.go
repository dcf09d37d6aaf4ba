//go:build !cgo || purego || !(linux || darwin)

package blas

import "github.com/perfusion-studio/perfusion/inference/backend/internal/crew"

// Available reports whether this build links a platform BLAS.
const Available = false

// Name is empty when no platform BLAS is linked.
func Name() string { return "" }

// Core is empty when no platform BLAS is linked.
func Core() string { return "" }

// Sgemm panics: this build links no platform BLAS. Check Available first.
func Sgemm(threads int, _ *crew.Crew, transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("blas: built without cgo or with the purego tag; no platform BLAS")
}
