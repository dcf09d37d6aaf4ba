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

// TestPanelMatchesFloat64 checks every set's product kernel against a
// float64 product on the sizes the tiles give and their edges: k = 1,
// column counts that are and are not multiples of the 16- and 32-wide
// blocks, row-major and transposed A, with and without accumulation. It
// also checks that the kernel writes nothing beyond its mr rows and n
// columns.
func TestPanelMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, kn := range available() {
		m := kn.mr
		for _, n := range []int{8, 16, 24, 32, 40, 48, 56, 64, 72, 96, 128, 136} {
			for _, k := range []int{1, 2, 7, 40, 129} {
				for _, trans := range []bool{false, true} {
					rs, ps := k+3, 1 // row-major A with a stride beyond k
					if trans {
						rs, ps = 1, m+5 // A stored transposed
					}
					ldb, ldc := n+8, n+5
					a := randn(rng, (m-1)*rs+(k-1)*ps+1, 1)
					b := randn(rng, (k-1)*ldb+n, 1)
					c0 := randn(rng, m*ldc+n, 1) // a row more than the kernel owns
					for _, acc := range []bool{false, true} {
						c := append([]float32(nil), c0...)
						kn.panel(k, a, rs, ps, b, ldb, c, ldc, n, acc)
						what := fmt.Sprintf("%s n=%d k=%d trans=%v acc=%v", kn.name, n, k, trans, acc)
						for i := range c {
							r, j := i/ldc, i%ldc
							if r >= m || j >= n {
								if c[i] != c0[i] {
									t.Fatalf("%s: wrote C[%d,%d] outside the panel", what, r, j)
								}
								continue
							}
							var want, mag float64
							if acc {
								want, mag = float64(c0[i]), math.Abs(float64(c0[i]))
							}
							for p := range k {
								x := float64(a[r*rs+p*ps]) * float64(b[p*ldb+j])
								want += x
								mag += math.Abs(x)
							}
							if d := math.Abs(float64(c[i]) - want); d > 1e-6*(1+mag) {
								t.Fatalf("%s: C[%d,%d] = %v, want %v", what, r, j, c[i], want)
							}
						}
					}
				}
			}
		}
	}
}

// TestRowKernelsAllWidths runs the assembly row kernels against the Go
// ones on every row width the tiles can give (multiples of 8 up to past
// the largest tile) and valid counts at and around the vector edges.
func TestRowKernelsAllWidths(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for _, fast := range fastSets(t) {
		for width := 8; width <= 144; width += 8 {
			for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 31, 32, 33, width - 9, width - 1, width} {
				if n < 0 || n > width {
					continue
				}
				what := fmt.Sprintf("%s width=%d n=%d", fast.name, width, n)
				s := randn(rng, width, 4)
				o := randn(rng, 40, 1)
				sw, ow := append([]float32(nil), s...), append([]float32(nil), o...)
				mlw := [2]float32{1, 2}
				mlg := mlw
				goKernels.softmaxRow(sw, n, &mlw, ow)
				fast.softmaxRow(s, n, &mlg, o)
				for j := range s {
					if d := math.Abs(float64(s[j] - sw[j])); d > 1e-6*(1+math.Abs(float64(sw[j]))) {
						t.Fatalf("%s: softmaxRow s[%d] = %v, want %v", what, j, s[j], sw[j])
					}
				}
				for j := range o {
					if d := math.Abs(float64(o[j] - ow[j])); d > 1e-6*(1+math.Abs(float64(ow[j]))) {
						t.Fatalf("%s: softmaxRow o[%d] = %v, want %v", what, j, o[j], ow[j])
					}
				}
				if math.Abs(float64(mlg[0]-mlw[0])) > 0 || math.Abs(float64(mlg[1]-mlw[1])) > 1e-5*float64(mlw[1]) {
					t.Fatalf("%s: softmaxRow state %v, want %v", what, mlg, mlw)
				}

				s = randn(rng, width, 4)
				sw = append([]float32(nil), s...)
				goKernels.expRow(sw, n, 0.7)
				fast.expRow(s, n, 0.7)
				for j := range s {
					if d := math.Abs(float64(s[j] - sw[j])); d > 1e-6*(1+math.Abs(float64(sw[j]))) {
						t.Fatalf("%s: expRow s[%d] = %v, want %v", what, j, s[j], sw[j])
					}
				}
			}

			p, dp := randn(rng, width, 1), randn(rng, width+8, 1)
			dpw := append([]float32(nil), dp...)
			goKernels.dsRow(p, dpw, -0.4)
			fast.dsRow(p, dp, -0.4)
			for j := range dp {
				if d := math.Abs(float64(dp[j] - dpw[j])); d > 1e-6*(1+math.Abs(float64(dpw[j]))) {
					t.Fatalf("%s width=%d: dsRow dp[%d] = %v, want %v", fast.name, width, j, dp[j], dpw[j])
				}
			}
		}
	}
}

// TestTileSizes checks the constraints tiles.go states, for the row counts
// of every set (6 and 8).
func TestTileSizes(t *testing.T) {
	for _, mr := range []int{6, 8} {
		for _, c := range []struct {
			name    string
			size, m int
		}{
			{"fwdQ", fwdQ, mr}, {"bwdQ", bwdQ, mr}, {"bwdK rows", bwdK, mr},
			{"fwdK", fwdK, 8}, {"bwdK columns", bwdK, 8},
		} {
			if c.size%c.m != 0 {
				t.Errorf("mr=%d: %s = %d is not a multiple of %d", mr, c.name, c.size, c.m)
			}
		}
	}
	for _, kn := range available() {
		if kn.mr != 6 && kn.mr != 8 {
			t.Errorf("%s: mr = %d, tiles.go assumes 6 or 8", kn.name, kn.mr)
		}
	}
}
