// Package cpu is the default backend: GEMM and a parallel loop on the CPU.
package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/perfusion-studio/perfusion/inference/backend"
)

// CPU implements backend.Backend. Create it with New.
type CPU struct {
	threads atomic.Int32
}

var _ backend.Backend = (*CPU)(nil)

// New returns a CPU backend using runtime.NumCPU() threads.
func New() *CPU {
	c := &CPU{}
	c.SetThreads(runtime.NumCPU())
	return c
}

// Name says which implementation runs.
func (c *CPU) Name() string { return "cpu/naive" }

// Threads is the number of worker threads.
func (c *CPU) Threads() int { return int(c.threads.Load()) }

// SetThreads sets the number of worker threads (at least 1).
func (c *CPU) SetThreads(n int) {
	if n < 1 {
		n = 1
	}
	c.threads.Store(int32(n))
}

// Parallel splits [0, n) into at most Threads() chunks.
func (c *CPU) Parallel(n int, fn func(lo, hi int)) {
	t := c.Threads()
	if t > n {
		t = n
	}
	if t <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + t - 1) / t
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// Gemm is a placeholder triple loop, parallel over rows of C.
func (c *CPU) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, cm []float32, ldc int) {
	c.Parallel(m, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := cm[i*ldc : i*ldc+n]
			for j := range row {
				var s float32
				for p := 0; p < k; p++ {
					var av, bv float32
					if transA {
						av = a[p*lda+i]
					} else {
						av = a[i*lda+p]
					}
					if transB {
						bv = b[j*ldb+p]
					} else {
						bv = b[p*ldb+j]
					}
					s += av * bv
				}
				if beta == 0 {
					row[j] = alpha * s
				} else {
					row[j] = alpha*s + beta*row[j]
				}
			}
		}
	})
}
