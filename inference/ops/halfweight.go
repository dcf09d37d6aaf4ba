package ops

import (
	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// HalfGemm reports whether e multiplies float16 weights directly (its
// backend is a backend.HalfGemmer that says it is fast): callers may then
// pass the operators float16 weights (tensors whose node is a
// tensor.HalfHolder) instead of converting them first. Linear, the token
// linears and the 1x1 and small-image convolutions (ConvOIHW) read
// them without a float32 copy; any other operator converts them.
func (e *Engine) HalfGemm() bool { return e.halfGemmer() != nil }

// halfGemmer returns e's backend as a backend.HalfGemmer when HalfGemm.
func (e *Engine) halfGemmer() backend.HalfGemmer {
	if e == nil {
		return nil
	}
	if h, ok := e.B.(backend.HalfGemmer); ok && h.HalfGemmFast() {
		return h
	}
	return nil
}

// weightRead is a weight as one operator call reads it: float32 values,
// or the float16 values of a tensor.HalfHolder that the backend
// multiplies directly (exactly one is set).
type weightRead struct {
	f32     []float32
	f16     []uint16
	hg      backend.HalfGemmer
	release func()
}

// readWeight reads w for one operator call (forward, or backward to the
// input): its float16 values when the backend multiplies them directly,
// otherwise tensor.Tensor.Borrow. Call release when done.
func (e *Engine) readWeight(w tensor.Tensor) weightRead {
	if hg := e.halfGemmer(); hg != nil {
		if h, ok := w.Half(); ok {
			return weightRead{f16: h, hg: hg, release: func() {}}
		}
	}
	d, release := w.Borrow()
	return weightRead{f32: d, release: release}
}

// gemmWA is e.B.Gemm with the weight as A.
func (e *Engine) gemmWA(transA, transB bool, m, n, k int, w weightRead, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	if w.f16 != nil {
		w.hg.GemmHalfA(transA, transB, m, n, k, 1, w.f16, lda, b, ldb, beta, c, ldc)
		return
	}
	e.B.Gemm(transA, transB, m, n, k, 1, w.f32, lda, b, ldb, beta, c, ldc)
}

// gemmWB is e.B.Gemm with the weight as B.
func (e *Engine) gemmWB(transA, transB bool, m, n, k int, a []float32, lda int,
	w weightRead, ldb int, beta float32, c []float32, ldc int) {
	if w.f16 != nil {
		w.hg.GemmHalfB(transA, transB, m, n, k, 1, a, lda, w.f16, ldb, beta, c, ldc)
		return
	}
	e.B.Gemm(transA, transB, m, n, k, 1, a, lda, w.f32, ldb, beta, c, ldc)
}
