package ops

import (
	"fmt"
	"math"
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

func TestUpsampleNearest(t *testing.T) {
	e := testEngine()
	for _, c := range []struct{ x, size []int }{
		{[]int{1, 2, 3, 3}, []int{5, 5}},  // a ceil(h/2) map back to its odd skip size
		{[]int{2, 3, 4, 3}, []int{7, 6}},  // odd height, doubled width
		{[]int{1, 1, 5, 4}, []int{3, 2}},  // downscale
		{[]int{1, 2, 2, 3}, []int{4, 6}},  // exactly 2x: Upsample2x
		{[]int{1, 1, 1, 1}, []int{1, 3}},  // a single pixel
		{[]int{1, 2, 6, 5}, []int{11, 9}}, // 2H-1 x 2W-1
	} {
		x := param(t, newRand(51), c.x...)
		h, w := c.size[0], c.size[1]
		y := must(t)(e.UpsampleNearest(x, h, w))
		b, ch, hi, wi := c.x[0], c.x[1], c.x[2], c.x[3]
		if !tensor.SameShape(y.Shape(), []int{b, ch, h, w}) {
			t.Fatalf("x%v to %v: shape %v", c.x, c.size, y.Shape())
		}
		want := make([]float64, b*ch*h*w)
		for p := 0; p < b*ch; p++ {
			for i := 0; i < h; i++ {
				for j := 0; j < w; j++ {
					si := int(math.Floor(float64(i) * float64(hi) / float64(h)))
					sj := int(math.Floor(float64(j) * float64(wi) / float64(w)))
					want[(p*h+i)*w+j] = float64(x.Data()[(p*hi+si)*wi+sj])
				}
			}
		}
		checkClose(t, fmt.Sprintf("upsample_nearest x%v to %v", c.x, c.size), y.Data(), want, 0, 0)
		gradCheck(t, func() (tensor.Tensor, error) { return e.UpsampleNearest(x, h, w) }, named{"x", x})
	}
	if _, err := e.UpsampleNearest(frozen(newRand(52), 1, 2, 3), 4, 4); err == nil {
		t.Error("rank-3 input: no error")
	}
	if _, err := e.UpsampleNearest(frozen(newRand(52), 1, 2, 3, 3), 0, 4); err == nil {
		t.Error("zero size: no error")
	}
}
