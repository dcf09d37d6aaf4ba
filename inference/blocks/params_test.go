package blocks

import (
	"math"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// A trainable load (LoadOptions.Params) records every tensor as a leaf
// that requires gradients, float32 even where the source holds float16 and
// the options ask for half weights, and the weight gradient of a Linear
// is x^T dy.
func TestLoaderParams(t *testing.T) {
	w := []float32{1, 2, 3, 4, 5, 6} // [2, 3]
	half := make([]uint16, 3)
	weights.Float32sToHalf(half, []float32{0.5, -1, 2})
	src := weights.Map{
		"m.lin.weight": {Data: w, Shape: []int{2, 3}},
		"m.lin.bias":   {Data: []float32{0.1, 0.2}, Shape: []int{2}},
		"m.h.weight":   {Half: half, Shape: []int{1, 3}},
	}
	params := map[string]tensor.Tensor{}
	l := NewLoader(src, "toy", "m.", LoadOptions{Half: HalfAlways, Params: params})
	lin := LoadLinear(l, "lin", 3, 2, true)
	h := LoadLinear(l.WithHalf(HalfAlways), "h", 3, 1, false)
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	if len(params) != 3 || lin.Half != nil || h.Half != nil {
		t.Fatalf("params %v, half weights %v %v", params, lin.Half, h.Half)
	}
	for k, p := range params {
		if !p.RequiresGrad() {
			t.Errorf("%s does not require gradients", k)
		}
	}
	if &params["m.lin.weight"].Data()[0] != &w[0] {
		t.Error("the parameter does not share the source's float32 data")
	}
	if got := params["m.h.weight"].Data(); got[1] != -1 {
		t.Errorf("float16 weight read as %v", got)
	}
	x := tensor.MustNew([]float32{1, -1, 2, 0.5, 0, -2}, 2, 3) // [2, 3]
	y, err := lin.Forward(ops.CPU(), x)                        // [2, 2]
	if err != nil {
		t.Fatal(err)
	}
	tensor.AccGrad(y.Node(), []float32{1, 1, 1, 1}) // dy = ones
	if err := ag.Backward(y.Node()); err != nil {
		t.Fatal(err)
	}
	gw := params["m.lin.weight"].Grad()
	xs := x.Data()
	for o := range 2 {
		for i := range 3 {
			want := float64(xs[i] + xs[3+i]) // sum over rows of x, dy = 1
			if math.Abs(float64(gw[o*3+i])-want) > 1e-6 {
				t.Errorf("dW[%d,%d] = %v, want %v", o, i, gw[o*3+i], want)
			}
		}
	}
	if gb := params["m.lin.bias"].Grad(); gb[0] != 2 || gb[1] != 2 {
		t.Errorf("db = %v, want [2 2]", gb)
	}
}
