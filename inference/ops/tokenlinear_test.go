package ops

import (
	"fmt"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// refPointwise is the 1x1 convolution y[b, o, p] = sum_c w[o, c] x[b, c, p]
// + bias[o] in float64, on the image layout x [B, C, N].
func refPointwise(x, w, bias []float32, nb, c, n, o int) []float64 {
	y := make([]float64, nb*o*n)
	for b := 0; b < nb; b++ {
		for k := 0; k < o; k++ {
			for p := 0; p < n; p++ {
				var s float64
				if bias != nil {
					s = float64(bias[k])
				}
				for i := 0; i < c; i++ {
					s += float64(w[k*c+i]) * float64(x[(b*c+i)*n+p])
				}
				y[(b*o+k)*n+p] = s
			}
		}
	}
	return y
}

var tokenLinearCases = []struct {
	b, c, h, w, o int
	bias          bool
}{
	{1, 3, 2, 2, 5, true},
	{2, 7, 3, 5, 4, false},
	{2, 33, 4, 3, 17, true},
}

func TestLinearToTokens(t *testing.T) {
	e := testEngine()
	r := newRand(81)
	for _, c := range tokenLinearCases {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			n := c.h * c.w
			x, w := param(t, r, c.b, c.c, c.h, c.w), param(t, r, c.o, c.c)
			ins := []named{{"x", x}, {"w", w}}
			var b tensor.Tensor
			var bias []float32
			if c.bias {
				b = param(t, r, c.o)
				bias = b.Data()
				ins = append(ins, named{"b", b})
			}
			img := refPointwise(x.Data(), w.Data(), bias, c.b, c.c, n, c.o) // [B, O, N]
			want := make([]float64, len(img))                               // [B, N, O]
			for bb := 0; bb < c.b; bb++ {
				for k := 0; k < c.o; k++ {
					for p := 0; p < n; p++ {
						want[(bb*n+p)*c.o+k] = img[(bb*c.o+k)*n+p]
					}
				}
			}
			y := must(t)(e.LinearToTokens(x, w, b))
			if !tensor.SameShape(y.Shape(), []int{c.b, n, c.o}) {
				t.Fatalf("shape %v", y.Shape())
			}
			checkClose(t, "linear_to_tokens", y.Data(), want, 1e-6*float64(c.c), 1e-5)
			gradCheck(t, func() (tensor.Tensor, error) { return e.LinearToTokens(x, w, b) }, ins...)
			xf := tensor.MustNew(x.Data(), x.Shape()...)
			gradCheck(t, func() (tensor.Tensor, error) { return e.LinearToTokens(xf, w, b) },
				append([]named{{"frozen x", xf}}, ins[1:]...)...)
		})
	}
}

func TestLinearFromTokens(t *testing.T) {
	e := testEngine()
	r := newRand(82)
	for _, c := range tokenLinearCases {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			n := c.h * c.w
			tok, w := param(t, r, c.b, n, c.c), param(t, r, c.o, c.c)
			res := param(t, r, c.b, c.o, c.h, c.w)
			ins := []named{{"tokens", tok}, {"w", w}, {"r", res}}
			var b tensor.Tensor
			var bias []float32
			if c.bias {
				b = param(t, r, c.o)
				bias = b.Data()
				ins = append(ins, named{"b", b})
			}
			img := make([]float32, tok.Size()) // tokens [B, N, C] as an image [B, C, N]
			for bb := 0; bb < c.b; bb++ {
				for p := 0; p < n; p++ {
					for i := 0; i < c.c; i++ {
						img[(bb*c.c+i)*n+p] = tok.Data()[(bb*n+p)*c.c+i]
					}
				}
			}
			want := refPointwise(img, w.Data(), bias, c.b, c.c, n, c.o)
			y := must(t)(e.LinearFromTokens(tok, w, b, tensor.Tensor{}, c.h, c.w))
			if !tensor.SameShape(y.Shape(), []int{c.b, c.o, c.h, c.w}) {
				t.Fatalf("shape %v", y.Shape())
			}
			checkClose(t, "linear_from_tokens", y.Data(), want, 1e-6*float64(c.c), 1e-5)
			for i, v := range res.Data() {
				want[i] += float64(v)
			}
			y = must(t)(e.LinearFromTokens(tok, w, b, res, c.h, c.w))
			checkClose(t, "linear_from_tokens + r", y.Data(), want, 1e-6*float64(c.c), 1e-5)
			gradCheck(t, func() (tensor.Tensor, error) { return e.LinearFromTokens(tok, w, b, res, c.h, c.w) }, ins...)
			rf, wf := tensor.MustNew(res.Data(), res.Shape()...), tensor.MustNew(w.Data(), w.Shape()...)
			gradCheck(t, func() (tensor.Tensor, error) { return e.LinearFromTokens(tok, wf, tensor.Tensor{}, rf, c.h, c.w) },
				named{"tokens", tok}, named{"frozen w", wf}, named{"frozen r", rf})
		})
	}
}

func TestTokenLinearShapeErrors(t *testing.T) {
	e := testEngine()
	r := newRand(83)
	var none tensor.Tensor
	x, w := frozen(r, 1, 3, 2, 2), frozen(r, 5, 3)
	for i, err := range []error{
		second(e.LinearToTokens(frozen(r, 1, 4, 2, 2), w, none)),
		second(e.LinearToTokens(x, w, frozen(r, 4))),
		second(e.LinearToTokens(frozen(r, 3, 4), w, none)),
		second(e.LinearFromTokens(frozen(r, 1, 4, 4), w, none, none, 2, 2)),
		second(e.LinearFromTokens(frozen(r, 1, 4, 3), w, none, none, 2, 3)),
		second(e.LinearFromTokens(frozen(r, 1, 4, 3), w, none, frozen(r, 1, 3, 2, 2), 2, 2)),
	} {
		if err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

func second(_ tensor.Tensor, err error) error { return err }
