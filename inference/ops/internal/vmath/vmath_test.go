package vmath

import (
	"math"
	"testing"
)

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Max(math.Abs(want), 1e-300)
}

func TestExp(t *testing.T) {
	worst := 0.0
	for x := -707.0; x < 709.5; x += 0.0137 {
		if e := relErr(Exp(x), math.Exp(x)); e > worst {
			worst = e
		}
	}
	if worst > 1e-10 {
		t.Fatalf("Exp: worst relative error %g", worst)
	}
	if Exp(-800) != 0 || !math.IsInf(Exp(800), 1) || !math.IsNaN(Exp(math.NaN())) {
		t.Fatalf("Exp: special values wrong: %v %v %v", Exp(-800), Exp(800), Exp(math.NaN()))
	}
	if Exp(0) != 1 {
		t.Fatalf("Exp(0) = %v", Exp(0))
	}
}

func TestPhi(t *testing.T) {
	worst := 0.0
	for x := -37.0; x < 9; x += 0.00731 {
		want := 0.5 * math.Erfc(-x/math.Sqrt2)
		if e := relErr(Phi(x), want); e > worst {
			worst = e
		}
	}
	if worst > 2e-7 {
		t.Fatalf("Phi: worst relative error %g", worst)
	}
}

func TestSigmoid(t *testing.T) {
	for x := -30.0; x < 30; x += 0.0731 {
		if e := relErr(Sigmoid(x), 1/(1+math.Exp(-x))); e > 1e-10 {
			t.Fatalf("Sigmoid(%g) relative error %g", x, e)
		}
	}
}

var sink float64

func BenchmarkExp(b *testing.B) {
	var s float64
	for i := 0; i < b.N; i++ {
		s += Exp(float64(i&4095)/512 - 4)
	}
	sink = s
}

func BenchmarkPhi(b *testing.B) {
	var s float64
	for i := 0; i < b.N; i++ {
		s += Phi(float64(i&4095)/512 - 4)
	}
	sink = s
}

func BenchmarkMathExp(b *testing.B) {
	var s float64
	for i := 0; i < b.N; i++ {
		s += math.Exp(float64(i&4095)/512 - 4)
	}
	sink = s
}

// grid returns n points spread over [lo, hi), n not a multiple of 8 so the
// scalar tail runs too.
func grid(n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*float64(i)/float64(n))
	}
	return x
}

// checkSlice checks got against ref elementwise with a relative tolerance
// that may grow with |x|: the float32 rounding of an exponent argument u
// costs ~|u| ulps of e^u. Values under float32's normal range (1e-37)
// need not be exact.
func checkSlice(t *testing.T, what string, x, got []float32, ref func(float64) float64, rtol func(float64) float64) {
	t.Helper()
	for i, v := range x {
		want := ref(float64(v))
		if d := math.Abs(float64(got[i]) - want); !(d <= 1e-37+rtol(float64(v))*math.Abs(want)) {
			t.Fatalf("%s(%g) = %g, want %g (vector kernels: %v)", what, v, got[i], want, hasAVX2)
		}
	}
}

func TestSlices(t *testing.T) { testSlices(t) }

// TestSlicesScalar runs the same checks with the vector kernels off.
func TestSlicesScalar(t *testing.T) {
	defer func(v bool) { hasAVX2 = v }(hasAVX2)
	hasAVX2 = false
	testSlices(t)
}

func testSlices(t *testing.T) {
	x := grid(100003, -80, 80)
	got := make([]float32, len(x))
	Exps(got, x)
	checkSlice(t, "Exps", x, got, math.Exp, func(float64) float64 { return 4e-7 })

	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-1.702*v)) }
	Sigmoids(got, x, 1.702)
	checkSlice(t, "Sigmoids", x, got, sig, func(v float64) float64 { return 5e-7 + 1e-7*math.Abs(1.702*v) })

	phi := func(v float64) float64 { return 0.5 * math.Erfc(-v/math.Sqrt2) }
	y := grid(100003, -14, 9)
	Phis(got[:len(y)], y)
	checkSlice(t, "Phis", y, got[:len(y)], phi, func(v float64) float64 { return 5e-7 + 1e-7*v*v })

	// GEGLU's gradients, against float64: dy*GELU(g) and dy*a*GELU'(g),
	// with a and dy of either sign.
	g := grid(20003, -12, 9)
	a, dy := grid(len(g), -2, 3), grid(len(g), 1.5, -1)
	da, dg := make([]float32, len(g)), make([]float32, len(g))
	GEGLUGrads(da, dg, a, g, dy)
	for i, v := range g {
		x := float64(v)
		phi := phi(x)
		pdf := math.Exp(-x*x/2) / math.Sqrt(2*math.Pi)
		wantA := float64(dy[i]) * x * phi
		wantG := float64(dy[i]) * float64(a[i]) * (phi + x*pdf)
		// both as sums of terms of size up to |dy*a*x*pdf| and |dy*a*Phi|
		scale := math.Abs(float64(dy[i])) * (1 + math.Abs(float64(a[i]))) * (1 + math.Abs(x))
		tol := 1e-37 + (5e-7+1e-7*x*x)*scale
		if math.Abs(float64(da[i])-wantA) > tol || math.Abs(float64(dg[i])-wantG) > tol {
			t.Fatalf("GEGLUGrads(a %g, g %g, dy %g) = %g, %g; want %g, %g (vector kernels: %v)",
				a[i], v, dy[i], da[i], dg[i], wantA, wantG, hasAVX2)
		}
	}

	// GELU's gradient, against float64, dy of either sign.
	gx := make([]float32, len(g))
	GELUGrads(gx, g, dy, make([]float32, len(g)))
	for i, v := range g {
		x := float64(v)
		want := float64(dy[i]) * (phi(x) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi))
		tol := 1e-37 + (5e-7+1e-7*x*x)*math.Abs(float64(dy[i]))*(1+math.Abs(x))
		if math.Abs(float64(gx[i])-want) > tol {
			t.Fatalf("GELUGrads(%g, dy %g) = %g, want %g (vector kernels: %v)", v, dy[i], gx[i], want, hasAVX2)
		}
	}

	// in place, short slices (scalar only), NaN
	z := grid(13, -3, 3)
	want := append([]float32(nil), z...)
	Exps(z, z)
	checkSlice(t, "Exps in place", want, z, math.Exp, func(float64) float64 { return 4e-7 })
	n := []float32{float32(math.NaN())}
	if Exps(n, n); !math.IsNaN(float64(n[0])) {
		t.Errorf("Exps(NaN) = %v", n[0])
	}
}

func BenchmarkSlices(b *testing.B) {
	x := grid(4096, -6, 6)
	y := make([]float32, len(x))
	b.Run("exp", func(b *testing.B) {
		b.SetBytes(4 * 4096)
		for b.Loop() {
			Exps(y, x)
		}
	})
	b.Run("sigmoid", func(b *testing.B) {
		b.SetBytes(4 * 4096)
		for b.Loop() {
			Sigmoids(y, x, 1)
		}
	})
	b.Run("phi", func(b *testing.B) {
		b.SetBytes(4 * 4096)
		for b.Loop() {
			Phis(y, x)
		}
	})
	b.Run("geglu-grads", func(b *testing.B) {
		da, dg := make([]float32, len(x)), make([]float32, len(x))
		b.SetBytes(4 * 4096)
		for b.Loop() {
			GEGLUGrads(da, dg, y, x, x)
		}
	})
}
