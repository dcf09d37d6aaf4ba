//go:build cgo && !purego && (linux || darwin)

package blas

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/internal/crew"
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
			Sgemm(threads, nil, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
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
			sgemmParts(nil, parts, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}, gemmtest.Shapes)
	}
}

// TestSgemmConcurrent checks that split GEMMs called from several
// goroutines at once (a backward pass runs operators concurrently, each
// running the library on one thread per part) give the results of the
// same calls made one at a time, bit for bit.
func TestSgemmConcurrent(t *testing.T) {
	const m, n, k = 77, 768, 512 // a text-encoder projection; m*n*k >= splitMin
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := make([]float32, m*k), make([]float32, n*k)
	for i := range a {
		a[i] = 2*rng.Float32() - 1
	}
	for i := range b {
		b[i] = 2*rng.Float32() - 1
	}
	want := make([]float32, m*n)
	cr := crew.New(crew.DefaultLinger) // shared by the concurrent calls
	Sgemm(2, cr, false, true, m, n, k, 1, a, k, b, k, 0, want, n)
	outs := make([][]float32, 4)
	for round := range 20 {
		var wg sync.WaitGroup
		for i := range outs {
			outs[i] = make([]float32, m*n)
			wg.Go(func() { Sgemm(2, cr, false, true, m, n, k, 1, a, k, b, k, 0, outs[i], n) })
		}
		wg.Wait()
		for i, got := range outs {
			if !slices.Equal(got, want) {
				t.Fatalf("round %d, call %d: the result differs from a call made alone", round, i)
			}
		}
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
