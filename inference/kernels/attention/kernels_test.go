package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// fastSets are the assembly kernel sets this machine runs.
func fastSets(t *testing.T) []kernels {
	sets := available()[1:]
	if len(sets) == 0 {
		t.Skip("no assembly kernels on this machine")
	}
	return sets
}

// TestKernelsAgree runs the assembly kernels against the Go ones on the
// awkward cases: transposed and strided operands, 8-column tails, k = 1,
// empty and partly masked score rows, a running max above the row's.
func TestKernelsAgree(t *testing.T) {
	for _, fast := range fastSets(t) {
		t.Run(fast.name, func(t *testing.T) { kernelsAgree(t, fast) })
	}
}

func kernelsAgree(t *testing.T, fast kernels) {
	rng := rand.New(rand.NewPCG(5, 5))
	near := func(what string, got, want []float32, tol float64) {
		t.Helper()
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); got[i] != want[i] && !(d <= tol*(1+math.Abs(float64(want[i])))) {
				t.Fatalf("%s: [%d] = %v, want %v", what, i, got[i], want[i])
			}
		}
	}

	for _, c := range []struct{ k, rs, ps, n, ldb, ldc int }{
		{40, 40, 1, 96, 96, 96},  // Q Kᵀ
		{7, 1, 13, 24, 24, 30},   // transposed A, 16+8 columns, wide C
		{1, 3, 1, 8, 8, 8},       // k = 1
		{33, 35, 1, 40, 41, 40},  // odd widths and strides
		{96, 1, 96, 48, 48, 48},  // Pᵀ dO
		{5, 200, 2, 16, 16, 100}, // far-apart A rows
	} {
		m := fast.mr
		a := randn(rng, (m-1)*c.rs+(c.k-1)*c.ps+1, 1)
		b := randn(rng, (c.k-1)*c.ldb+c.n, 1)
		c0 := randn(rng, (m-1)*c.ldc+c.n, 1)
		for _, acc := range []bool{false, true} {
			want := append([]float32(nil), c0...)
			got := append([]float32(nil), c0...)
			panelRows(m, c.k, a, c.rs, c.ps, b, c.ldb, want, c.ldc, c.n, acc)
			fast.panel(c.k, a, c.rs, c.ps, b, c.ldb, got, c.ldc, c.n, acc)
			near(fmt.Sprintf("panel %+v acc=%v", c, acc), got, want, 1e-5)
		}
	}

	for _, c := range []struct {
		n, width int
		m, l     float32
	}{
		{0, 16, negInf, 0}, // nothing seen yet, nothing valid: zeros
		{0, 16, 2, 3},      // nothing valid: row zeroed, state kept
		{5, 16, negInf, 0}, // masked tail inside the first vector
		{13, 24, 1, 2},     // tail in the second vector
		{24, 24, 30, 5},    // running max above every score: alpha = 1
		{17, 32, -3, 0.5},
	} {
		s := randn(rng, c.width, 3)
		o := randn(rng, 16, 1)
		sw, ow := append([]float32(nil), s...), append([]float32(nil), o...)
		mlw, mlg := [2]float32{c.m, c.l}, [2]float32{c.m, c.l}
		goKernels.softmaxRow(sw, c.n, &mlw, ow)
		fast.softmaxRow(s, c.n, &mlg, o)
		what := fmt.Sprintf("softmaxRow %+v", c)
		near(what+" row", s, sw, 1e-6)
		near(what+" out", o, ow, 1e-6)
		near(what+" state", mlg[:], mlw[:], 1e-6)

		s = randn(rng, c.width, 3)
		sw = append([]float32(nil), s...)
		goKernels.expRow(sw, c.n, c.l)
		fast.expRow(s, c.n, c.l)
		near(fmt.Sprintf("expRow %+v", c), s, sw, 1e-6)
	}

	p, dp := randn(rng, 24, 1), randn(rng, 24, 1)
	dpw := append([]float32(nil), dp...)
	goKernels.dsRow(p, dpw, 0.3)
	fast.dsRow(p, dp, 0.3)
	near("dsRow", dp, dpw, 1e-6)
}

func TestPanelBoundsPanic(t *testing.T) {
	for _, kn := range available() {
		t.Run(kn.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic for a short C")
				}
			}()
			m := kn.mr
			a, b, c := make([]float32, m*4), make([]float32, 4*16), make([]float32, (m-1)*16)
			kn.panel(4, a, 4, 1, b, 16, c, 16, 16, false)
		})
	}
}
