package ops

import (
	"fmt"
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

func refGELU(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }

// spread is a test input covering the tails: normal values scaled by 4.
func spread(t *testing.T, seed uint64, shape ...int) tensor.Tensor {
	x := param(t, newRand(seed), shape...)
	for i := range x.Data() {
		x.Data()[i] *= 4
	}
	return x
}

func TestActivationsForward(t *testing.T) {
	e := testEngine()
	x := spread(t, 40, 3, 7, 11)
	xd := x.Data()
	cases := []struct {
		name string
		op   func(tensor.Tensor) (tensor.Tensor, error)
		ref  func(float64) float64
	}{
		{"gelu", e.GELU, refGELU},
		{"quick_gelu", e.QuickGELU, func(v float64) float64 { return v / (1 + math.Exp(-1.702*v)) }},
		{"silu", e.SiLU, func(v float64) float64 { return v / (1 + math.Exp(-v)) }},
	}
	for _, c := range cases {
		y := must(t)(c.op(x))
		want := make([]float64, len(xd))
		for i, v := range xd {
			want[i] = c.ref(float64(v))
		}
		checkClose(t, c.name, y.Data(), want, 1e-7, 1e-6)
		gradCheck(t, func() (tensor.Tensor, error) { return c.op(x) }, named{"x", x})
	}
}

func TestGEGLU(t *testing.T) {
	e := testEngine()
	for _, shape := range [][]int{{6}, {2, 3, 10}, {4, 34}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			x := spread(t, 41, shape...)
			y := must(t)(e.GEGLU(x))
			d := shape[len(shape)-1] / 2
			wantShape := append(append([]int(nil), shape[:len(shape)-1]...), d)
			if !tensor.SameShape(y.Shape(), wantShape) {
				t.Fatalf("shape %v, want %v", y.Shape(), wantShape)
			}
			xd := x.Data()
			want := make([]float64, len(xd)/2)
			for i := range want {
				r, j := i/d, i%d
				want[i] = float64(xd[r*2*d+j]) * refGELU(float64(xd[r*2*d+d+j]))
			}
			checkClose(t, "geglu", y.Data(), want, 1e-6, 1e-6)
			gradCheck(t, func() (tensor.Tensor, error) { return e.GEGLU(x) }, named{"x", x})
		})
	}
}
