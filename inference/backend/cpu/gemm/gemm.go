// Package gemm is a pure-Go single-precision GEMM: C = alpha*op(A)*op(B) +
// beta*C on row-major matrices, cache-blocked and multi-threaded.
//
// The structure follows the BLIS design (Van Zee & van de Geijn, "BLIS: A
// Framework for Rapidly Instantiating BLAS Functionality", ACM TOMS 2015):
// op(B) is packed into [kc, nc] panels that stay in L3, op(A) into [mc, kc]
// blocks that stay in L2, and a register-blocked micro-kernel multiplies an
// mr×kc sliver of A by a kc×nr sliver of B into an mr×nr tile of C. On amd64
// with AVX2 and FMA the micro-kernel is written in Go assembly (the purego
// build tag only turns off cgo BLAS elsewhere; it keeps this assembly); other
// targets use a portable Go kernel.
//
// Threads split C into a grid of rectangles, each computed independently with
// its own packing buffers, chosen to keep the per-thread critical path short.
package gemm

import (
	"fmt"
	"sync"

	"github.com/perfusion-studio/perfusion/inference/backend/internal/crew"
)

// Engine runs GEMMs and keeps packing buffers for reuse across calls. The
// zero value is ready to use; it is safe for concurrent use and must not be
// copied after first use.
type Engine struct {
	kern  *kernel    // nil: the best kernel for this CPU
	crew  *crew.Crew // runs the parts of a split GEMM; nil: fresh goroutines
	aBufs sync.Pool  // *[]float32 holding packed A blocks
	bBufs sync.Pool  // *[]float32 holding packed B panels
}

// Kernel names the micro-kernel in use, e.g. "avx2-6x16" or "go4x4".
func (e *Engine) Kernel() string { return e.kernel().name }

// SetCrew makes the engine run the parts of its split GEMMs on c (the
// calling goroutine takes parts too). Call it before the engine's first
// use.
func (e *Engine) SetCrew(c *crew.Crew) { e.crew = c }

func (e *Engine) kernel() *kernel {
	if e.kern != nil {
		return e.kern
	}
	return &bestKernel
}

// minParallelFlops is the smallest problem (2*m*n*k) worth splitting across
// goroutines: about 20 µs of single-core work against ~1 µs of spawning.
const minParallelFlops = 2e6

// packCost is the cost of packing one element relative to one flop of the
// micro-kernel, used to weigh packing against compute when splitting C.
const packCost = 50

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on up to threads goroutines.
// op(A) is [m, k], op(B) is [k, n], C is [m, n]; op(X) is X, or its
// transpose when transX. lda, ldb, ldc are the row strides of A, B, C as
// stored. When beta is 0, C is only written (NaNs in it are ignored). It
// panics if a stride or slice is too short for the shapes.
func (e *Engine) Sgemm(threads int, transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checked(e, threads, m, n, k, alpha, operand{data: a, ld: lda, trans: transA},
		operand{data: b, ld: ldb, trans: transB}, beta, c, ldc,
		checkArgs(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc))
}

// SgemmHalfA is Sgemm with A held as binary16 (IEEE half precision, such
// as float16 weights used in place): each element is widened to float32
// as it is packed, so the result is Sgemm's on the widened A.
func (e *Engine) SgemmHalfA(threads int, transA, transB bool, m, n, k int, alpha float32,
	a []uint16, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checked(e, threads, m, n, k, alpha, halfMatrix{data: a, ld: lda, trans: transA},
		operand{data: b, ld: ldb, trans: transB}, beta, c, ldc,
		checkArgs(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc))
}

// SgemmHalfB is Sgemm with B held as binary16, widened as it is packed.
func (e *Engine) SgemmHalfB(threads int, transA, transB bool, m, n, k int, alpha float32,
	a []float32, lda int, b []uint16, ldb int, beta float32, c []float32, ldc int) {
	checked(e, threads, m, n, k, alpha, operand{data: a, ld: lda, trans: transA},
		halfMatrix{data: b, ld: ldb, trans: transB}, beta, c, ldc,
		checkArgs(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc))
}

// checked panics with err (the operands' check) if there is one, and
// otherwise computes C = alpha*op(A)*op(B) + beta*C: nothing for an empty
// C, only beta*C when k or alpha is 0, run otherwise.
func checked[SA aSource, SB bSource](e *Engine, threads, m, n, k int, alpha float32, A SA, B SB,
	beta float32, c []float32, ldc int, err error) {
	if err != nil {
		panic(err)
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	run(e, threads, m, n, k, alpha, A, B, beta, c, ldc)
}

// run computes C = alpha*op(A)*op(B) + beta*C for checked, non-empty
// shapes, splitting C over up to threads goroutines. It is generic in the
// operands' storage so that they are not boxed into interfaces (an
// allocation per call).
func run[SA aSource, SB bSource](e *Engine, threads, m, n, k int, alpha float32, A SA, B SB, beta float32, c []float32, ldc int) {
	kn := e.kernel()
	tm, tn := split(threads, m, n, k, kn)
	if tm*tn == 1 {
		block(e, kn, A, B, 0, m, 0, n, k, alpha, beta, c, ldc)
		return
	}
	e.crew.Run(threads-1, tm*tn, func(t int) {
		i0, i1 := chunk(m, tm, t/tn, kn.mr)
		j0, j1 := chunk(n, tn, t%tn, kn.nr)
		if i0 < i1 && j0 < j1 {
			block(e, kn, A, B, i0, i1, j0, j1, k, alpha, beta, c, ldc)
		}
	})
}

// block computes C[i0:i1, j0:j1] on the calling goroutine. It is generic
// in the operands so that neither is boxed into an interface (an
// allocation per call).
func block[SA aSource, SB bSource](e *Engine, kn *kernel, A SA, B SB, i0, i1, j0, j1, k int,
	alpha, beta float32, c []float32, ldc int) {
	mr, nr := kn.mr, kn.nr
	kcMax := min(kn.kc, k)
	// The packed A block is followed by an [mr, nr] scratch tile for
	// ragged edges, so that it is pooled too.
	na := roundUp(min(kn.mc, i1-i0), mr) * kcMax
	ap := e.get(&e.aBufs, na+mr*nr)
	bp := e.get(&e.bBufs, roundUp(min(kn.nc, j1-j0), nr)*kcMax)
	defer e.aBufs.Put(ap)
	defer e.bBufs.Put(bp)
	edge := (*ap)[na:][:mr*nr]
	for jc := j0; jc < j1; jc += kn.nc {
		nc := min(kn.nc, j1-jc)
		for pc := 0; pc < k; pc += kn.kc {
			kc := min(kn.kc, k-pc)
			B.packB(*bp, pc, kc, jc, nc, nr)
			// The first k block applies the caller's beta; later ones add.
			bEff, load := beta, beta != 0
			if pc > 0 {
				bEff, load = 1, true
			}
			for ic := i0; ic < i1; ic += kn.mc {
				mc := min(kn.mc, i1-ic)
				a := A.blockA(*ap, ic, mc, pc, kc, mr)
				e.macro(kn, a, (*bp)[:roundUp(nc, nr)*kc],
					mc, nc, kc, alpha, bEff, load, c[ic*ldc+jc:], ldc, edge)
			}
		}
	}
}

// macro runs the micro-kernel over one packed A block [mc, kc] and one packed
// B panel [kc, nc], updating the C block whose top-left element is c[0].
func (e *Engine) macro(kn *kernel, ap, bp []float32, mc, nc, kc int,
	alpha, beta float32, load bool, c []float32, ldc int, edge []float32) {
	mr, nr := kn.mr, kn.nr
	for jr := 0; jr < nc; jr += nr {
		bpanel := bp[jr*kc : (jr+nr)*kc]
		cols := min(nr, nc-jr)
		for ir := 0; ir < mc; ir += mr {
			apanel := ap[ir*kc : (ir+mr)*kc]
			rows := min(mr, mc-ir)
			ct := c[ir*ldc+jr:]
			if rows == mr && cols == nr {
				kn.fn(kc, apanel, bpanel, ct, ldc, alpha, beta, load)
				continue
			}
			kn.fn(kc, apanel, bpanel, edge, nr, 1, 0, false)
			for r := range rows {
				dst := ct[r*ldc : r*ldc+cols]
				src := edge[r*nr : r*nr+cols]
				for j, v := range src {
					if load {
						dst[j] = alpha*v + beta*dst[j]
					} else {
						dst[j] = alpha * v
					}
				}
			}
		}
	}
}

// get returns a pooled buffer of at least n floats.
func (e *Engine) get(pool *sync.Pool, n int) *[]float32 {
	if v, ok := pool.Get().(*[]float32); ok && cap(*v) >= n {
		*v = (*v)[:n]
		return v
	}
	buf := make([]float32, n)
	return &buf
}

// split picks a tm×tn grid of C rectangles (tm*tn <= threads) minimising one
// thread's compute plus packing, in flops.
func split(threads, m, n, k int, kn *kernel) (tm, tn int) {
	if threads <= 1 || 2*float64(m)*float64(n)*float64(k) < minParallelFlops {
		return 1, 1
	}
	mt, nt := ceilDiv(m, kn.mr), ceilDiv(n, kn.nr) // tiles along m and n
	tm, tn = 1, 1
	best := -1.0
	for i := 1; i <= min(threads, mt); i++ {
		for j := 1; i*j <= threads && j <= nt; j++ {
			mloc := float64(ceilDiv(mt, i) * kn.mr)
			nloc := float64(ceilDiv(nt, j) * kn.nr)
			cost := 2*mloc*nloc + packCost*(mloc+nloc)
			if best < 0 || cost < best {
				best, tm, tn = cost, i, j
			}
		}
	}
	return tm, tn
}

// chunk returns part idx of [0, n) split into parts, on multiples of align.
func chunk(n, parts, idx, align int) (lo, hi int) {
	tiles := ceilDiv(n, align)
	lo = min(tiles*idx/parts*align, n)
	hi = min(tiles*(idx+1)/parts*align, n)
	return lo, hi
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

// CheckArgs reports whether the slices and strides hold matrices of the
// given shapes, as Sgemm expects: op(A) [m, k], op(B) [k, n], C [m, n].
func CheckArgs(transA, transB bool, m, n, k int, a []float32, lda int,
	b []float32, ldb int, c []float32, ldc int) error {
	return checkArgs(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
}

// checkArgs is CheckArgs on the operands' lengths, whatever their types.
func checkArgs(transA, transB bool, m, n, k, na, lda, nb, ldb, nc, ldc int) error {
	if m < 0 || n < 0 || k < 0 {
		return fmt.Errorf("gemm: negative size m=%d n=%d k=%d", m, n, k)
	}
	if err := checkLen("A", transA, m, k, na, lda); err != nil {
		return err
	}
	if err := checkLen("B", transB, k, n, nb, ldb); err != nil {
		return err
	}
	return checkLen("C", false, m, n, nc, ldc)
}

// checkLen checks that n elements with stride ld hold op(X) of shape
// [rows, cols].
func checkLen(name string, trans bool, rows, cols, n, ld int) error {
	if trans {
		rows, cols = cols, rows
	}
	if ld < max(cols, 1) {
		return fmt.Errorf("gemm: ld%s=%d < %d columns of %s as stored", name, ld, cols, name)
	}
	if rows == 0 || cols == 0 {
		return nil
	}
	if need := (rows-1)*ld + cols; n < need {
		return fmt.Errorf("gemm: %s has %d elements, [%d, %d] with stride %d needs %d",
			name, n, rows, cols, ld, need)
	}
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }
