package cpu

import (
	"fmt"
	"github.com/perfusion-studio/perfusion/inference/internal/x86"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/internal/blas"
	"github.com/perfusion-studio/perfusion/inference/backend/internal/gemmtest"
)

func TestGemm(t *testing.T) {
	shapes := gemmtest.Shapes
	if testing.Short() {
		shapes = gemmtest.ShortShapes
	}
	for _, c := range []*CPU{New(), NewGo()} {
		for _, threads := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/threads%d", c.Name(), threads), func(t *testing.T) {
				c.SetThreads(threads)
				gemmtest.Run(t, c.Gemm, shapes)
			})
		}
	}
}

// TestGemmPackedA checks PackA + GemmPackedA where the backend packs, and
// that a BLAS backend says it does not.
func TestGemmPackedA(t *testing.T) {
	for _, c := range []*CPU{New(), NewGo()} {
		if c.PackedASize(5, 7) == 0 {
			if !c.useBLAS {
				t.Errorf("%s: PackedASize 0 on the pure-Go GEMM", c.Name())
			}
			continue
		}
		c.SetThreads(3)
		gemmtest.Run(t, func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
			b []float32, ldb int, beta float32, cm []float32, ldc int) {
			pa := make([]float32, c.PackedASize(m, k))
			c.PackA(pa, transA, m, k, 0, m, a, lda)
			c.GemmPackedA(pa, transB, m, n, k, alpha, b, ldb, beta, cm, ldc)
		}, gemmtest.ShortShapes)
	}
	if c, ok := NewBLAS(); ok && c.PackedASize(5, 7) != 0 {
		t.Errorf("%s: PackedASize %d, want 0", c.Name(), c.PackedASize(5, 7))
	}
}

// TestGemmConcurrent runs GEMMs from several goroutines at once, as model
// code does inside Parallel, and checks each against the reference.
func TestGemmConcurrent(t *testing.T) {
	c := New()
	c.SetThreads(2)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { gemmtest.Run(t, c.Gemm, gemmtest.ShortShapes) })
	}
	wg.Wait()
}

func TestName(t *testing.T) {
	want := "cpu/go-"
	if blas.Available && !x86.HasAVX512() {
		want = "cpu/" + blas.Name()
	}
	if x86.HasAVX512() {
		want = "cpu/go-avx512"
	}
	if name := New().Name(); !strings.HasPrefix(name, want) {
		t.Errorf("New().Name() = %q, want prefix %q", name, want)
	}
	if name := NewGo().Name(); !strings.HasPrefix(name, "cpu/go-") {
		t.Errorf("NewGo().Name() = %q, want prefix cpu/go-", name)
	}
	if c, ok := NewBLAS(); ok != blas.Available || (ok && c.Name() != "cpu/"+blas.Name()) {
		t.Errorf("NewBLAS() = %q, %v; want the platform BLAS when linked (%v)", c.Name(), ok, blas.Available)
	}
}

func TestParallel(t *testing.T) {
	c := New()
	for _, threads := range []int{1, 2, 3, 8} {
		c.SetThreads(threads)
		for _, n := range []int{0, 1, 2, 5, 7, 100} {
			var calls atomic.Int32
			hits := make([]atomic.Int32, n)
			c.Parallel(n, func(lo, hi int) {
				calls.Add(1)
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("threads=%d n=%d: index %d visited %d times", threads, n, i, h)
				}
			}
			if got := int(calls.Load()); got > threads || (n > 0 && got == 0) {
				t.Errorf("threads=%d n=%d: %d chunks, want 1..%d", threads, n, got, threads)
			}
		}
	}
}

func TestSetThreadsClamps(t *testing.T) {
	c := New()
	c.SetThreads(0)
	if c.Threads() != 1 {
		t.Errorf("SetThreads(0) gave %d threads, want 1", c.Threads())
	}
}

func TestGemmBadArgsPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Gemm with a too-short B did not panic")
		}
	}()
	New().Gemm(false, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]float32, 3), 2, 0, make([]float32, 4), 2)
}
