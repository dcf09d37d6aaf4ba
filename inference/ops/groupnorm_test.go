package ops

import (
	"fmt"
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// refGroupNorm is group normalisation in float64: x [B, C, S].
func refGroupNorm(x []float32, b, c, s, groups int, gamma, beta []float32, eps float64) []float64 {
	y := make([]float64, len(x))
	n := c / groups * s
	for bg := 0; bg < b*groups; bg++ {
		var mean, v float64
		for i := 0; i < n; i++ {
			mean += float64(x[bg*n+i])
		}
		mean /= float64(n)
		for i := 0; i < n; i++ {
			d := float64(x[bg*n+i]) - mean
			v += d * d
		}
		rstd := 1 / math.Sqrt(v/float64(n)+eps)
		for i := 0; i < n; i++ {
			ch := bg%groups*(c/groups) + i/s
			h := (float64(x[bg*n+i]) - mean) * rstd
			if gamma != nil {
				h *= float64(gamma[ch])
			}
			if beta != nil {
				h += float64(beta[ch])
			}
			y[bg*n+i] = h
		}
	}
	return y
}

var groupNormCases = []struct {
	x      []int
	groups int
	affine bool
	shift  float32 // added to x: a mean far from zero
}{
	{x: []int{2, 6, 5, 3}, groups: 3, affine: true},
	{x: []int{1, 8, 7}, groups: 8, affine: true},
	{x: []int{3, 4}, groups: 2},
	{x: []int{2, 12, 3, 3}, groups: 1, affine: true, shift: 40},
	{x: []int{1, 9, 2, 2, 3}, groups: 3, affine: true, shift: -3},
}

func TestGroupNormForward(t *testing.T) {
	e := testEngine()
	r := newRand(20)
	for _, c := range groupNormCases {
		x := frozen(r, c.x...)
		for i := range x.Data() {
			x.Data()[i] = x.Data()[i]*2 + c.shift
		}
		var gamma, beta tensor.Tensor
		var g, b []float32
		if c.affine {
			gamma, beta = frozen(r, c.x[1]), frozen(r, c.x[1])
			g, b = gamma.Data(), beta.Data()
		}
		y := must(t)(e.GroupNorm(x, c.groups, gamma, beta, 1e-5))
		s := x.Size() / (c.x[0] * c.x[1])
		checkClose(t, fmt.Sprintf("group_norm x%v", c.x), y.Data(), refGroupNorm(x.Data(), c.x[0], c.x[1], s, c.groups, g, b, 1e-5), 1e-6, 1e-5)
	}
}

// TestGroupNormLarge checks statistics over a SD-sized group (10 channels of
// 64x64) with an offset mean stay accurate to ~1e-6.
func TestGroupNormLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large group norm skipped in -short")
	}
	e := testEngine()
	r := newRand(21)
	for _, shift := range []float32{0, 0.5, 3} { // mean/std 0, 1 (float32 fold) and 6 (float64 path)
		x := frozen(r, 1, 20, 64, 64)
		for i := range x.Data() {
			x.Data()[i] = x.Data()[i]*0.5 + shift
		}
		gamma := frozen(r, 20)
		y := must(t)(e.GroupNorm(x, 2, gamma, tensor.Tensor{}, 1e-6))
		want := refGroupNorm(x.Data(), 1, 20, 64*64, 2, gamma.Data(), nil, 1e-6)
		checkClose(t, fmt.Sprintf("group_norm 20x64x64 shift %g", shift), y.Data(), want, 1e-6, 1e-6)
	}
}

func TestGroupNormGrad(t *testing.T) {
	e := testEngine()
	r := newRand(22)
	for _, c := range groupNormCases {
		t.Run(fmt.Sprint(c.x), func(t *testing.T) {
			x := param(t, r, c.x...)
			for i := range x.Data() {
				x.Data()[i] += c.shift / 8
			}
			ins := []named{{"x", x}}
			var gamma, beta tensor.Tensor
			if c.affine {
				gamma, beta = param(t, r, c.x[1]), param(t, r, c.x[1])
				ins = append(ins, named{"gamma", gamma}, named{"beta", beta})
			}
			gradCheck(t, func() (tensor.Tensor, error) { return e.GroupNorm(x, c.groups, gamma, beta, 1e-5) }, ins...)
			if c.affine {
				gf, bf := tensor.MustNew(gamma.Data(), c.x[1]), tensor.MustNew(beta.Data(), c.x[1])
				gradCheck(t, func() (tensor.Tensor, error) { return e.GroupNorm(x, c.groups, gf, bf, 1e-5) },
					named{"x", x}, named{"frozen gamma", gf}, named{"frozen beta", bf})
				xf := tensor.MustNew(x.Data(), c.x...)
				gradCheck(t, func() (tensor.Tensor, error) { return e.GroupNorm(xf, c.groups, gamma, beta, 1e-5) },
					named{"frozen x", xf}, named{"gamma", gamma}, named{"beta", beta})
			}
		})
	}
}

// silu64 is x*sigmoid(x) in float64.
func silu64(v float64) float64 { return v / (1 + math.Exp(-v)) }

func TestGroupNormSiLU(t *testing.T) {
	e := testEngine()
	r := newRand(23)
	for _, c := range groupNormCases {
		t.Run(fmt.Sprint(c.x), func(t *testing.T) {
			x := param(t, r, c.x...)
			for i := range x.Data() {
				x.Data()[i] = x.Data()[i]*2 + c.shift
			}
			ins := []named{{"x", x}}
			var gamma, beta tensor.Tensor
			var g, b []float32
			if c.affine {
				gamma, beta = param(t, r, c.x[1]), param(t, r, c.x[1])
				g, b = gamma.Data(), beta.Data()
				ins = append(ins, named{"gamma", gamma}, named{"beta", beta})
			}
			s := x.Size() / (c.x[0] * c.x[1])
			want := refGroupNorm(x.Data(), c.x[0], c.x[1], s, c.groups, g, b, 1e-5)
			for i, v := range want {
				want[i] = silu64(v)
			}
			y := must(t)(e.GroupNormSiLU(x, c.groups, gamma, beta, 1e-5))
			checkClose(t, "group_norm_silu", y.Data(), want, 1e-6, 1e-5)
			gradCheck(t, func() (tensor.Tensor, error) { return e.GroupNormSiLU(x, c.groups, gamma, beta, 1e-5) }, ins...)
			xf := tensor.MustNew(x.Data(), c.x...)
			if c.affine {
				gradCheck(t, func() (tensor.Tensor, error) { return e.GroupNormSiLU(xf, c.groups, gamma, beta, 1e-5) },
					named{"frozen x", xf}, named{"gamma", gamma}, named{"beta", beta})
			}
		})
	}
}
