package rng

import (
	"math"
	"testing"
)

// ulpDiff is the distance in float32 ulps between a and b (same sign).
func ulpDiff(a, b float32) int64 {
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		d = -d
	}
	return d
}

// TestLibmAccuracy checks the glibc-compatible logf, sinf and cosf against
// float64 evaluation over the kernel's domains (log on (0, 1], sin/cos on
// [0, 2 pi) and a little beyond, negatives included): within 1 ulp, and
// mostly exact.
func TestLibmAccuracy(t *testing.T) {
	const n = 200000
	for _, fn := range []struct {
		name   string
		f      func(float32) float32
		ref    func(float64) float64
		lo, hi float64
	}{
		{"logf", logf, math.Log, 0x1p-24, 1},
		{"logf(large)", logf, math.Log, 1, 1e6},
		{"sinf", sinf, math.Sin, -7, 7},
		{"cosf", cosf, math.Cos, -7, 7},
		{"sinf(small)", sinf, math.Sin, -0.8, 0.8},
		{"cosf(small)", cosf, math.Cos, -0.8, 0.8},
	} {
		exact := 0
		for i := 0; i < n; i++ {
			x := float32(fn.lo + (fn.hi-fn.lo)*float64(i)/n)
			got, want := fn.f(x), float32(fn.ref(float64(x)))
			if d := ulpDiff(got, want); d > 1 && math.Abs(float64(got-want)) > 1e-7 {
				t.Fatalf("%s(%g) = %g, float64 gives %g (%d ulp)", fn.name, x, got, want, d)
			} else if d == 0 {
				exact++
			}
		}
		if exact < n*9/10 {
			t.Errorf("%s: only %d of %d correctly rounded", fn.name, exact, n)
		}
	}
	if logf(1) != 0 || cosf(0) != 1 || sinf(0) != 0 {
		t.Errorf("logf(1)=%g cosf(0)=%g sinf(0)=%g", logf(1), cosf(0), sinf(0))
	}
}
