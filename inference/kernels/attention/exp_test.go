package attention

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulps is how many float32 steps got is from want (exact value in float64).
// Below the normal range a step is the subnormal spacing 2^-149.
func ulps(got float32, want float64) float64 {
	w32 := float32(want)
	if math.IsInf(float64(w32), 0) || math.IsInf(float64(got), 0) {
		if got == w32 {
			return 0
		}
		return math.Inf(1)
	}
	step := math.Max(math.Abs(float64(math.Nextafter32(w32, float32(math.Inf(1)))-w32)), 0x1p-149)
	return math.Abs(float64(got)-want) / step
}

func TestExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var xs []float32
	for x := -110.0; x <= 90; x += 0.00731 {
		xs = append(xs, float32(x))
	}
	for range 100000 {
		xs = append(xs, float32(rng.Float64()*200-110))
	}
	for range 1000 {
		xs = append(xs, float32(rng.NormFloat64()*1e-3))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1, -1, 88.72, 88.73, -87.33, -87.34, -103.9, -1e30, 1e30, -0x1p-30)
	for _, kn := range kernelSets() {
		// Odd lengths and offsets exercise the assembly's tails.
		for _, n := range []int{1, 3, 8, 13, len(xs)} {
			src := xs[len(xs)-n:]
			dst := make([]float32, n+1)
			kn.exp(dst[1:], src)
			worst, at := 0.0, float32(0)
			for i, x := range src {
				want := math.Exp(float64(x))
				if u := ulps(dst[1+i], want); u > worst || math.IsNaN(u) {
					worst, at = u, x
				}
			}
			t.Logf("%s n=%d: worst %.3g ulp at %v", kn.name, n, worst, at)
			if !(worst <= 2) {
				t.Errorf("%s n=%d: exp(%v) off by %v ulp", kn.name, n, at, worst)
			}
			if dst[0] != 0 {
				t.Errorf("%s n=%d: wrote before dst", kn.name, n)
			}
		}

		special := []float32{float32(math.Inf(-1)), -1000, -200, -104, float32(math.Inf(1)), 1000, 89, float32(math.NaN())}
		got := make([]float32, len(special))
		kn.exp(got, special)
		for i, want := range []float32{0, 0, 0, 0, float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(1))} {
			if got[i] != want {
				t.Errorf("%s: exp(%v) = %v, want %v", kn.name, special[i], got[i], want)
			}
		}
		if g := got[len(got)-1]; g == g {
			t.Errorf("%s: exp(NaN) = %v, want NaN", kn.name, g)
		}
	}
}

func TestExpExported(t *testing.T) {
	src := []float32{-2, 0, 0.5, 3}
	dst := make([]float32, len(src))
	Exp(dst, src)
	for i, x := range src {
		if u := ulps(dst[i], math.Exp(float64(x))); u > 2 {
			t.Errorf("Exp(%v) = %v off by %v ulp", x, dst[i], u)
		}
	}
}

// TestExp2 checks the softmax's base-2 exponential against math.Exp2 on
// the inputs it gets (scores minus a running max, so mostly <= 0): within
// 2 ulp above 2^-125, 0 at or below -126, for -Inf and for NaN (masked
// entries never count).
func TestExp2(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var xs []float32
	for x := -125.0; x <= 20; x += 0.00317 {
		xs = append(xs, float32(x))
	}
	for range 100000 {
		xs = append(xs, float32(rng.Float64()*145-125))
	}
	xs = append(xs, 0, -0.5, 0.5, -1e-8, 1e-8, -124.99)
	for _, kn := range kernelSets() {
		for _, n := range []int{1, 5, 8, len(xs)} {
			src := xs[len(xs)-n:]
			dst := make([]float32, n)
			kn.exp2(dst, src)
			worst, at := 0.0, float32(0)
			for i, x := range src {
				if u := ulps(dst[i], math.Exp2(float64(x))); u > worst || math.IsNaN(u) {
					worst, at = u, x
				}
			}
			if !(worst <= 2) {
				t.Errorf("%s n=%d: exp2(%v) off by %v ulp", kn.name, n, at, worst)
			}
		}
		special := []float32{-126, -126.5, -200, -1e30, float32(math.Inf(-1)), float32(math.NaN())}
		got := make([]float32, len(special))
		kn.exp2(got, special)
		for i, g := range got {
			if g != 0 {
				t.Errorf("%s: exp2(%v) = %v, want 0", kn.name, special[i], g)
			}
		}
	}
}
