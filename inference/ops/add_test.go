package ops

import (
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

func TestAdd(t *testing.T) {
	e := testEngine()
	r := newRand(60)
	a, b := param(t, r, 2, 3, 5), param(t, r, 2, 3, 5)
	y := must(t)(e.Add(a, b))
	want := make([]float64, a.Size())
	for i := range want {
		want[i] = float64(a.Data()[i] + b.Data()[i]) // one float32 rounding
	}
	checkClose(t, "add", y.Data(), want, 0, 0)
	gradCheck(t, func() (tensor.Tensor, error) { return e.Add(a, b) }, named{"a", a}, named{"b", b})
	// the same operand twice gets both gradients
	gradCheck(t, func() (tensor.Tensor, error) { return e.Add(a, a) }, named{"a", a})
	bf := tensor.MustNew(b.Data(), b.Shape()...)
	gradCheck(t, func() (tensor.Tensor, error) { return e.Add(bf, a) }, named{"frozen b", bf}, named{"a", a})
}

func TestAddChannel(t *testing.T) {
	e := testEngine()
	r := newRand(61)
	for _, s := range [][]int{{2, 3, 4, 5}, {3, 2, 7}, {2, 5}} {
		x, c := param(t, r, s...), param(t, r, s[0], s[1])
		y := must(t)(e.AddChannel(x, c))
		sp := x.Size() / c.Size()
		want := make([]float64, x.Size())
		for i := range want {
			want[i] = float64(x.Data()[i] + c.Data()[i/sp])
		}
		checkClose(t, "add_channel", y.Data(), want, 0, 0)
		gradCheck(t, func() (tensor.Tensor, error) { return e.AddChannel(x, c) }, named{"x", x}, named{"c", c})
	}
}

func TestScale(t *testing.T) {
	e := testEngine()
	x := param(t, newRand(62), 3, 4)
	y := must(t)(e.Scale(x, -0.37))
	want := make([]float64, x.Size())
	for i := range want {
		want[i] = float64(x.Data()[i] * -0.37)
	}
	checkClose(t, "scale", y.Data(), want, 0, 0)
	gradCheck(t, func() (tensor.Tensor, error) { return e.Scale(x, -0.37) }, named{"x", x})
}
