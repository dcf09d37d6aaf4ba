package covariance

import (
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

const perfusionIO = "perfusion_io.safetensors"

// TestGoldenInverse computes C from the reference's caption encodings and
// compares C⁻¹ with the reference's float64 and float32 inverses
// (ChenDarYen data/estimate_C_inv.py: all 77 tokens, 1/n_captions).
func TestGoldenInverse(t *testing.T) {
	f := golden.Open(t, perfusionIO)
	enc, shape := golden.Float32(t, f, "encodings") // [n_captions, 77, D]
	if len(shape) != 3 {
		t.Fatalf("encodings shape %v, want [n, T, D]", shape)
	}
	n, d := shape[0], shape[2]
	a, err := NewAccumulator(d, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(enc, n); err != nil {
		t.Fatal(err)
	}
	c, err := a.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	// the reference inverts C as it is, whatever its conditioning
	cv, err := FactorWithLimit(c, d, math.Inf(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(cv.Summary())
	if cv.Ridge != 0 {
		t.Fatalf("the golden C is not positive definite (condition %g)", cv.Condition)
	}
	if def, err := Factor(c, d); err != nil || (def.Ridge == 0) != (cv.Condition <= MaxCondition) {
		t.Errorf("Factor: ridge %g at condition %g (%v)", def.Ridge, cv.Condition, err)
	}

	want64, shape64, err := f.Float64("C_inv_f64")
	if err != nil {
		t.Fatal(err)
	}
	if len(shape64) != 2 || shape64[0] != d || shape64[1] != d {
		t.Fatalf("C_inv_f64 shape %v, want [%d %d]", shape64, d, d)
	}
	got := cv.Inverse()
	tol := golden.Tolerance(t, perfusionIO, "C_inv_f64")
	bad, worst := 0, 0.0
	for i, w := range want64 {
		diff := math.Abs(got[i] - w)
		if !(diff <= tol.Atol+tol.Rtol*math.Abs(w)) {
			bad++
		}
		worst = max(worst, diff/(tol.Atol+tol.Rtol*math.Abs(w)))
	}
	if bad > 0 {
		t.Errorf("C_inv_f64: %d of %d values out of tolerance (worst at %.3g× the tolerance)", bad, len(want64), worst)
	}
	t.Logf("C_inv_f64: worst difference %.3g× the tolerance", worst)

	want32, _ := golden.Float32(t, f, "C_inv")
	golden.Check(t, "C_inv", cv.InverseFloat32(), want32, golden.Tolerance(t, perfusionIO, "C_inv"))

	// MulInverse agrees with the reference inverse on i*.
	istar, _ := golden.Float32(t, f, "target_input")
	v := make([]float64, d)
	for i := range v {
		v[i] = float64(istar[i])
	}
	u := cv.MulInverse(v)
	for i := range d {
		s := 0.0
		for j := range d {
			s += want64[i*d+j] * v[j]
		}
		if math.Abs(u[i]-s) > 1e-6*(1+math.Abs(s)) {
			t.Fatalf("C⁻¹i*[%d] = %v, reference %v", i, u[i], s)
		}
	}
}
