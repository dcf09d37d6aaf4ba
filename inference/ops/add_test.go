package ops

import (
	"math"
	"runtime"
	"testing"

	"github.com/nlpodyssey/spago/ag"

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

// An operator drops the gradient of its result once its backward pass has
// passed it on: a training pass then holds only the gradients in flight,
// while the leaves keep theirs.
func TestBackwardDropsInnerGradients(t *testing.T) {
	e := testEngine()
	r := newRand(62)
	x := param(t, r, 2, 3, 5)
	h := must(t)(e.SiLU(x))
	y := must(t)(e.Add(h, h)) // y = 2 SiLU(x)
	ones := make([]float32, y.Size())
	for i := range ones {
		ones[i] = 1
	}
	tensor.AccGrad(y.Node(), ones)
	if err := ag.Backward(y.Node()); err != nil {
		t.Fatal(err)
	}
	if g := h.Grad(); g != nil {
		t.Errorf("inner result still holds its gradient after backward: %v", g)
	}
	g := x.Grad()
	if len(g) != x.Size() {
		t.Fatalf("leaf gradient: %d values, want %d", len(g), x.Size())
	}
	for i, v := range x.Data() {
		s := 1 / (1 + math.Exp(-float64(v)))
		if want := 2 * s * (1 + float64(v)*(1-s)); math.Abs(float64(g[i])-want) > 1e-5 {
			t.Fatalf("dy/dx[%d] = %g, want %g", i, g[i], want)
		}
	}
}

// TestHandOn checks the gradients where operators pass their own output
// gradient on whole (handOn): a sum's second operand and a residual take
// the buffer, while other gradients of the same node are added into it,
// and the same node twice gets both.
func TestHandOn(t *testing.T) {
	e := testEngine()
	r := newRand(62)
	x, w, b := param(t, r, 6, 5), param(t, r, 5, 5), param(t, r, 5)
	fwd := func() (tensor.Tensor, error) {
		h := must(t)(e.Scale(x, 1.5))
		a := must(t)(e.Scale(h, 2))
		l := must(t)(e.LinearAdd(h, w, b, h)) // h: input and residual
		s := must(t)(e.Add(a, l))             // l takes s's gradient
		return e.Add(s, s)
	}
	gradCheck(t, fwd, named{"x", x}, named{"w", w}, named{"b", b})
}

// TestHandOnCopiesNothing checks that a residual's gradient is the
// result's own buffer passed on, not a copy: a backward pass through a
// chain of residual sums allocates less than one gradient's size.
func TestHandOnCopiesNothing(t *testing.T) {
	e := testEngine()
	r := newRand(63)
	const n = 1 << 20 // 4 MB a gradient
	x := param(t, r, n)
	c := frozen(r, n)
	pass := func() uint64 {
		y := x
		for range 4 {
			y = must(t)(e.Add(c, y)) // y takes the sum's gradient
		}
		seed := make([]float32, n)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		e.accGrad(y, seed) // taken as is
		if err := ag.Backward(y.Node()); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&m1)
		x.ZeroGrad()
		return m1.TotalAlloc - m0.TotalAlloc
	}
	pass() // the pool fills
	if got := pass(); got >= 4*n {
		t.Errorf("backward allocated %d bytes, want under one gradient (%d): a copy was made", got, 4*n)
	}
}
