// Package gemmtest checks any row-major SGEMM against a plain float64
// triple loop, over shapes chosen to hit ragged tiles, blocking edges, all
// four transpose combinations, padded leading dimensions and alpha/beta
// special cases. It is shared by the tests of the backend packages.
package gemmtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Func is the SGEMM under test: C = alpha*op(A)*op(B) + beta*C, row-major.
type Func func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int)

// Shape is one (m, n, k) problem.
type Shape struct{ M, N, K int }

// Shapes covers 1s, primes, sizes not divisible by common tiles (4, 6, 8,
// 16, 24, 32) and sizes large enough to be split across threads.
var Shapes = []Shape{
	{1, 1, 1}, {1, 17, 5}, {9, 1, 31}, {5, 7, 1}, {2, 3, 4},
	{7, 13, 17}, {16, 16, 16}, {6, 16, 33}, {37, 41, 43}, {61, 29, 2},
	{24, 65, 300}, {101, 97, 103}, {150, 130, 70}, {13, 257, 129},
}

// ShortShapes is a quick subset for -short runs.
var ShortShapes = []Shape{{1, 1, 1}, {7, 13, 17}, {37, 41, 43}, {150, 130, 70}}

// scalars lists (alpha, beta) pairs; beta 0 must ignore NaN in C.
var scalars = [][2]float32{{1, 0}, {1, 1}, {-0.5, 2}, {0.75, -1.25}, {0, 0.5}, {2, 0}}

// Run checks f on every shape, transpose pair and (alpha, beta) pair.
func Run(t testing.TB, f Func, shapes []Shape) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			for i, ab := range scalars {
				name := fmt.Sprintf("m%d_n%d_k%d_tA%v_tB%v_ab%d", s.M, s.N, s.K, tr[0], tr[1], i)
				// Every other case pads the leading dimensions.
				pad := (i + s.M) % 2 * (1 + rng.IntN(5))
				if !check(t, name, f, rng, s, tr[0], tr[1], ab[0], ab[1], pad) {
					return // one detailed failure is enough
				}
			}
		}
	}
}

// check runs one case; it reports false after failing t on the first mismatch.
func check(t testing.TB, name string, f Func, rng *rand.Rand, s Shape, transA, transB bool, alpha, beta float32, pad int) bool {
	m, n, k := s.M, s.N, s.K
	ar, ac := m, k // A as stored
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n // B as stored
	if transB {
		br, bc = n, k
	}
	lda, ldb, ldc := ac+pad, bc+pad, n+pad
	a := random(rng, ar*lda)
	b := random(rng, br*ldb)
	c := random(rng, m*ldc)
	const sentinel = 12345
	for i := range m {
		for j := n; j < ldc; j++ {
			c[i*ldc+j] = sentinel
		}
	}
	want := make([]float64, m*n) // [m, n]
	var cmax float64
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				ai, bi := i*lda+p, p*ldb+j
				if transA {
					ai = p*lda + i
				}
				if transB {
					bi = j*ldb + p
				}
				av, bv := float64(a[ai]), float64(b[bi])
				s += av * bv
			}
			w := float64(alpha) * s
			if beta != 0 {
				w += float64(beta) * float64(c[i*ldc+j])
				cmax = max(cmax, math.Abs(float64(c[i*ldc+j])))
			}
			want[i*n+j] = w
		}
	}
	if beta == 0 {
		for i := range m { // garbage the caller promised not to read
			for j := range n {
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	f(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	// Inputs lie in [-1, 1]; float32 accumulation error grows with k.
	tol := 2e-6*float64(k)*math.Abs(float64(alpha)) + 2e-6*math.Abs(float64(beta))*cmax + 1e-7
	for i := range m {
		for j := range ldc {
			got := float64(c[i*ldc+j])
			if j >= n {
				if got != sentinel {
					t.Errorf("%s: C[%d][%d] in the padding was overwritten: %v", name, i, j, got)
					return false
				}
				continue
			}
			if d := math.Abs(got - want[i*n+j]); !(d <= tol) {
				t.Errorf("%s (alpha=%v beta=%v pad=%d): C[%d][%d] = %v, want %v (tol %g)",
					name, alpha, beta, pad, i, j, got, want[i*n+j], tol)
				return false
			}
		}
	}
	return true
}

func random(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 2*rng.Float32() - 1
	}
	return x
}
