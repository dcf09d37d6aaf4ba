package ops

import (
	"fmt"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// refLinear is y = x w^T + b in float64 over rows of x.
func refLinear(x, w, b []float32, in, out int) []float64 {
	m := len(x) / in
	y := make([]float64, m*out)
	for r := 0; r < m; r++ {
		for o := 0; o < out; o++ {
			var s float64
			if b != nil {
				s = float64(b[o])
			}
			for i := 0; i < in; i++ {
				s += float64(x[r*in+i]) * float64(w[o*in+i])
			}
			y[r*out+o] = s
		}
	}
	return y
}

var linearCases = []struct {
	x    []int
	out  int
	bias bool
}{
	{x: []int{5}, out: 3, bias: true},
	{x: []int{7, 13}, out: 9},
	{x: []int{2, 5, 17}, out: 11, bias: true},
	{x: []int{3, 1, 4, 33}, out: 65, bias: true},
}

func TestLinearForward(t *testing.T) {
	e := testEngine()
	r := newRand(10)
	for _, c := range linearCases {
		in := c.x[len(c.x)-1]
		x, w := frozen(r, c.x...), frozen(r, c.out, in)
		var b tensor.Tensor
		var bias []float32
		if c.bias {
			b = frozen(r, c.out)
			bias = b.Data()
		}
		y := must(t)(e.Linear(x, w, b))
		want := append(append([]int(nil), c.x[:len(c.x)-1]...), c.out)
		if !tensor.SameShape(y.Shape(), want) {
			t.Fatalf("x%v: shape %v, want %v", c.x, y.Shape(), want)
		}
		checkClose(t, fmt.Sprintf("linear x%v", c.x), y.Data(), refLinear(x.Data(), w.Data(), bias, in, c.out), 1e-6*float64(in), 1e-5)
	}
}

func TestLinearGrad(t *testing.T) {
	e := testEngine()
	r := newRand(11)
	for _, c := range linearCases {
		t.Run(fmt.Sprint(c.x), func(t *testing.T) {
			in := c.x[len(c.x)-1]
			x, w := param(t, r, c.x...), param(t, r, c.out, in)
			ins := []named{{"x", x}, {"w", w}}
			var b tensor.Tensor
			if c.bias {
				b = param(t, r, c.out)
				ins = append(ins, named{"b", b})
			}
			gradCheck(t, func() (tensor.Tensor, error) { return e.Linear(x, w, b) }, ins...)
			wf := tensor.MustNew(w.Data(), c.out, in)
			gradCheck(t, func() (tensor.Tensor, error) { return e.Linear(x, wf, tensor.Tensor{}) },
				named{"x", x}, named{"frozen w", wf})
			xf := tensor.MustNew(x.Data(), c.x...)
			gradCheck(t, func() (tensor.Tensor, error) { return e.Linear(xf, w, b) }, append(ins[1:], named{"frozen x", xf})...)
		})
	}
}

func TestLinearAdd(t *testing.T) {
	e := testEngine()
	r := newRand(13)
	for _, c := range linearCases {
		t.Run(fmt.Sprint(c.x), func(t *testing.T) {
			in := c.x[len(c.x)-1]
			shape := append(append([]int(nil), c.x[:len(c.x)-1]...), c.out)
			x, w, res := param(t, r, c.x...), param(t, r, c.out, in), param(t, r, shape...)
			ins := []named{{"x", x}, {"w", w}, {"r", res}}
			var b tensor.Tensor
			var bias []float32
			if c.bias {
				b = param(t, r, c.out)
				bias = b.Data()
				ins = append(ins, named{"b", b})
			}
			want := refLinear(x.Data(), w.Data(), bias, in, c.out)
			for i, v := range res.Data() {
				want[i] += float64(v)
			}
			y := must(t)(e.LinearAdd(x, w, b, res))
			checkClose(t, "linear + r", y.Data(), want, 1e-6*float64(in), 1e-5)
			gradCheck(t, func() (tensor.Tensor, error) { return e.LinearAdd(x, w, b, res) }, ins...)
			rf := tensor.MustNew(res.Data(), shape...)
			gradCheck(t, func() (tensor.Tensor, error) { return e.LinearAdd(x, w, tensor.Tensor{}, rf) },
				named{"x", x}, named{"w", w}, named{"frozen r", rf})
		})
	}
	x, w := frozen(r, 2, 3, 4), frozen(r, 5, 4)
	if _, err := e.LinearAdd(x, w, tensor.Tensor{}, frozen(r, 2, 3, 4)); err == nil {
		t.Error("residual [2 3 4] for output [2 3 5]: no error")
	}
}

// TestChainGrad checks that gradients flow through a chain of operators
// into an input when every weight is frozen (Perfusion backpropagates
// through the frozen UNet), and that a constant-only chain builds no graph.
func TestChainGrad(t *testing.T) {
	e := testEngine()
	r := newRand(12)
	x := param(t, r, 2, 8, 5, 5)
	w1, w2 := frozen(r, 6, 8, 3, 3), frozen(r, 4, 6)
	gamma, beta := frozen(r, 6), frozen(r, 6)
	fwd := func() (tensor.Tensor, error) {
		h, err := e.Conv2D(x, w1, tensor.Tensor{}, Conv2DParams{Pad: Pad(1)}) // [2, 6, 5, 5]
		if err != nil {
			return h, err
		}
		if h, err = e.GroupNorm(h, 3, gamma, beta, 1e-5); err != nil {
			return h, err
		}
		if h, err = e.SiLU(h); err != nil {
			return h, err
		}
		if h, err = e.ToTokens(h); err != nil { // [2, 25, 6]
			return h, err
		}
		return e.Linear(h, w2, tensor.Tensor{}) // [2, 25, 4]
	}
	gradCheck(t, fwd, named{"x", x}, named{"w1", w1}, named{"w2", w2}, named{"gamma", gamma}, named{"beta", beta})

	xc := tensor.MustNew(x.Data(), x.Shape()...)
	y := must(t)(e.Linear(must(t)(e.SiLU(xc)), frozen(r, 3, 5), tensor.Tensor{}))
	if y.RequiresGrad() {
		t.Fatalf("constant inputs gave a graph node")
	}
}
