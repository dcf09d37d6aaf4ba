package golden

import (
	"math"
	"testing"
)

// recorder captures failures instead of failing the real test.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}

func TestCheck(t *testing.T) {
	tol := Tol{Atol: 1e-3, Rtol: 1e-2}
	cases := []struct {
		name      string
		got, want []float32
		ok        bool
	}{
		{"equal", []float32{1, 2}, []float32{1, 2}, true},
		{"within atol+rtol", []float32{1.0109, -2}, []float32{1, -2}, true},
		{"outside", []float32{1.02, 2}, []float32{1, 2}, false},
		{"NaN", []float32{float32(math.NaN())}, []float32{1}, false},
		{"length", []float32{1}, []float32{1, 2}, false},
		{"empty golden", nil, nil, false},
	}
	for _, c := range cases {
		r := &recorder{TB: t}
		if got := Check(r, c.name, c.got, c.want, tol); got != c.ok || r.failed == c.ok {
			t.Errorf("%s: Check = %v (failed %v), want %v", c.name, got, r.failed, c.ok)
		}
	}
}
