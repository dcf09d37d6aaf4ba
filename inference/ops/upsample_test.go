package ops

import (
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

func TestUpsample2x(t *testing.T) {
	e := testEngine()
	for _, s := range [][]int{{1, 1, 1, 1}, {2, 3, 5, 4}, {1, 2, 3, 7}} {
		x := param(t, newRand(50), s...)
		y := must(t)(e.Upsample2x(x))
		b, c, h, w := s[0], s[1], s[2], s[3]
		if !tensor.SameShape(y.Shape(), []int{b, c, 2 * h, 2 * w}) {
			t.Fatalf("x%v: shape %v", s, y.Shape())
		}
		want := make([]float64, 4*x.Size())
		for p := 0; p < b*c; p++ {
			for i := 0; i < 2*h; i++ {
				for j := 0; j < 2*w; j++ {
					want[(p*2*h+i)*2*w+j] = float64(x.Data()[(p*h+i/2)*w+j/2])
				}
			}
		}
		checkClose(t, "upsample2x", y.Data(), want, 0, 0)
		gradCheck(t, func() (tensor.Tensor, error) { return e.Upsample2x(x) }, named{"x", x})
	}
}
