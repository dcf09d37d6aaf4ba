package ops

import (
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

func TestTokens(t *testing.T) {
	e := testEngine()
	r := newRand(80)
	for _, s := range [][]int{{1, 1, 1, 1}, {2, 3, 5, 7}, {1, 40, 6, 9}, {2, 33, 1, 35}} {
		b, c, h, w := s[0], s[1], s[2], s[3]
		x := param(t, r, s...)
		y := must(t)(e.ToTokens(x))
		if !tensor.SameShape(y.Shape(), []int{b, h * w, c}) {
			t.Fatalf("to_tokens %v: shape %v", s, y.Shape())
		}
		want := make([]float64, x.Size())
		for n := 0; n < b; n++ {
			for ch := 0; ch < c; ch++ {
				for p := 0; p < h*w; p++ {
					want[(n*h*w+p)*c+ch] = float64(x.Data()[(n*c+ch)*h*w+p])
				}
			}
		}
		checkClose(t, "to_tokens", y.Data(), want, 0, 0)
		gradCheck(t, func() (tensor.Tensor, error) { return e.ToTokens(x) }, named{"x", x})

		back := must(t)(e.FromTokens(y, h, w))
		if !tensor.SameShape(back.Shape(), s) {
			t.Fatalf("from_tokens: shape %v, want %v", back.Shape(), s)
		}
		checkClose(t, "from_tokens(to_tokens(x))", back.Data(), f64(x.Data()), 0, 0)
		tok := param(t, r, b, h*w, c)
		gradCheck(t, func() (tensor.Tensor, error) { return e.FromTokens(tok, h, w) }, named{"tokens", tok})
	}
}
