package gemm

import (
	"fmt"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/internal/gemmtest"
)

// tiny shrinks a kernel's cache blocks so that small test shapes cross
// every blocking loop (several mc, kc and nc blocks per call).
func tiny(k kernel) *kernel {
	k.mc, k.kc, k.nc = 2*k.mr, 7, 3*k.nr
	return &k
}

func kernels() map[string]*kernel {
	ks := map[string]*kernel{
		"go":      &goKernel,
		"go-tiny": tiny(goKernel),
	}
	if best := bestKernel; best.name != goKernel.name {
		ks[best.name] = &best
		ks[best.name+"-tiny"] = tiny(best)
	}
	for _, k := range extraKernels() {
		ks[k.name] = &k
		ks[k.name+"-tiny"] = tiny(k)
	}
	return ks
}

func TestSgemm(t *testing.T) {
	shapes := gemmtest.Shapes
	if testing.Short() {
		shapes = gemmtest.ShortShapes
	}
	for name, kn := range kernels() {
		for _, threads := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("%s/threads%d", name, threads), func(t *testing.T) {
				e := &Engine{kern: kn}
				gemmtest.Run(t, func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
					b []float32, ldb int, beta float32, c []float32, ldc int) {
					e.Sgemm(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
				}, shapes)
			})
		}
	}
}

func TestZeroSizes(t *testing.T) {
	var e Engine
	c := []float32{1, 2, 3, 4}
	e.Sgemm(2, false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0.5, c, 2) // k = 0: C = beta*C
	if c[0] != 0.5 || c[3] != 2 {
		t.Errorf("k=0: C = %v, want beta*C = [0.5 1 1.5 2]", c)
	}
	e.Sgemm(2, false, false, 0, 2, 3, 1, nil, 3, make([]float32, 6), 2, 0, nil, 2) // m = 0: no-op
}

func TestBadArgsPanic(t *testing.T) {
	var e Engine
	defer func() {
		if recover() == nil {
			t.Error("Sgemm with a too-short A did not panic")
		}
	}()
	e.Sgemm(1, false, false, 2, 2, 2, 1, make([]float32, 3), 2, make([]float32, 4), 2, 0, make([]float32, 4), 2)
}

func TestSplit(t *testing.T) {
	kn := &kernel{mr: 6, nr: 16}
	for _, tc := range []struct{ threads, m, n, k, tm, tn int }{
		{1, 2048, 2048, 2048, 1, 1},
		{2, 8, 8, 8, 1, 1},         // too small to split
		{2, 4096, 320, 320, 2, 1},  // tall C: split rows
		{2, 320, 4096, 2880, 1, 2}, // wide C: split columns
		{4, 2048, 2048, 2048, 2, 2},
	} {
		tm, tn := split(tc.threads, tc.m, tc.n, tc.k, kn)
		if tm != tc.tm || tn != tc.tn {
			t.Errorf("split(%d, %d, %d, %d) = %d×%d, want %d×%d", tc.threads, tc.m, tc.n, tc.k, tm, tn, tc.tm, tc.tn)
		}
	}
}

// After a first call, a single-threaded Sgemm of the same shape allocates
// one small object, op(B) boxed as a bSource (the seam for other weight
// storage): its packing buffers and the edge tile (ragged shapes here)
// come from the engine's pools. Several threads add the goroutine starts.
func TestSgemmSteadyStateAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make test runs this package short under the race detector, whose instrumentation allocates")
	}
	for name, kn := range kernels() {
		e := &Engine{kern: kn}
		m, n, k := 3*kn.mr+1, 2*kn.nr+3, 50
		a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		for i := range a {
			a[i] = float32(i%7) - 3
		}
		for i := range b {
			b[i] = float32(i%5) - 2
		}
		call := func() { e.Sgemm(1, false, true, m, n, k, 1, a, k, b, k, 0, c, n) }
		call()
		if got := testing.AllocsPerRun(20, call); got > 1 {
			t.Errorf("%s: a steady-state %dx%dx%d Sgemm allocates %v objects, want at most 1", name, m, n, k, got)
		}
	}
}

// TestSgemmPacked checks PackA + SgemmPacked on every shape, kernel and
// thread count, as TestSgemm does Sgemm.
func TestSgemmPacked(t *testing.T) {
	shapes := gemmtest.Shapes
	if testing.Short() {
		shapes = gemmtest.ShortShapes
	}
	for name, kn := range kernels() {
		for _, threads := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("%s/threads%d", name, threads), func(t *testing.T) {
				e := &Engine{kern: kn}
				gemmtest.Run(t, func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
					b []float32, ldb int, beta float32, c []float32, ldc int) {
					pa := make([]float32, e.PackedSize(m, k)+3) // longer than needed is fine
					// In two row ranges, the second first, as a caller
					// packing rows as it produces them may.
					mid := min(m, e.PackedRows())
					rows := func(i int) []float32 { // op(A) from row i on
						if transA {
							return a[i:]
						}
						return a[i*lda:]
					}
					e.PackA(pa, transA, m, k, mid, m, rows(mid), lda)
					e.PackA(pa, transA, m, k, 0, mid, a, lda)
					e.SgemmPacked(threads, pa, transB, m, n, k, alpha, b, ldb, beta, c, ldc)
				}, shapes)
			})
		}
	}
}
