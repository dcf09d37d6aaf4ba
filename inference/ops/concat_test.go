package ops

import (
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

func TestConcatChannels(t *testing.T) {
	e := testEngine()
	r := newRand(70)
	for _, c := range []struct{ a, b []int }{
		{[]int{2, 3, 4, 5}, []int{2, 2, 4, 5}},
		{[]int{3, 1}, []int{3, 4}},
		{[]int{1, 2, 3}, []int{1, 5, 3}},
	} {
		a, b := param(t, r, c.a...), param(t, r, c.b...)
		y := must(t)(e.ConcatChannels(a, b))
		ws := append([]int(nil), c.a...)
		ws[1] += c.b[1]
		if !tensor.SameShape(y.Shape(), ws) {
			t.Fatalf("%v ++ %v: shape %v, want %v", c.a, c.b, y.Shape(), ws)
		}
		n, la, lb := c.a[0], a.Size()/c.a[0], b.Size()/c.a[0]
		want := make([]float64, 0, y.Size())
		for i := 0; i < n; i++ {
			want = append(want, f64(a.Data()[i*la:(i+1)*la])...)
			want = append(want, f64(b.Data()[i*lb:(i+1)*lb])...)
		}
		checkClose(t, "concat", y.Data(), want, 0, 0)
		gradCheck(t, func() (tensor.Tensor, error) { return e.ConcatChannels(a, b) }, named{"a", a}, named{"b", b})
	}
}
