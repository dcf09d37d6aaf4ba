package ops

import (
	"fmt"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

var layerNormCases = []struct {
	x      []int
	affine bool
	shift  float32
}{
	{x: []int{7}, affine: true},
	{x: []int{3, 5, 9}, affine: true},
	{x: []int{4, 6}},
	{x: []int{2, 3, 33}, affine: true, shift: 50},
}

func TestLayerNormForward(t *testing.T) {
	e := testEngine()
	r := newRand(30)
	for _, c := range layerNormCases {
		x := frozen(r, c.x...)
		for i := range x.Data() {
			x.Data()[i] += c.shift
		}
		n := c.x[len(c.x)-1]
		var gamma, beta tensor.Tensor
		var g, b []float32
		if c.affine {
			gamma, beta = frozen(r, n), frozen(r, n)
			g, b = gamma.Data(), beta.Data()
		}
		y := must(t)(e.LayerNorm(x, gamma, beta, 1e-5))
		// a layer norm is a group norm of [rows, 1, C] with one group
		want := refGroupNorm(x.Data(), x.Size()/n, 1, n, 1, nil, nil, 1e-5)
		for i := range want {
			if g != nil {
				want[i] *= float64(g[i%n])
			}
			if b != nil {
				want[i] += float64(b[i%n])
			}
		}
		checkClose(t, fmt.Sprintf("layer_norm x%v", c.x), y.Data(), want, 1e-6, 1e-5)
	}
}

func TestLayerNormGrad(t *testing.T) {
	e := testEngine()
	r := newRand(31)
	for _, c := range layerNormCases {
		t.Run(fmt.Sprint(c.x), func(t *testing.T) {
			x := param(t, r, c.x...)
			for i := range x.Data() {
				x.Data()[i] += c.shift / 16
			}
			n := c.x[len(c.x)-1]
			ins := []named{{"x", x}}
			var gamma, beta tensor.Tensor
			if c.affine {
				gamma, beta = param(t, r, n), param(t, r, n)
				ins = append(ins, named{"gamma", gamma}, named{"beta", beta})
			}
			gradCheck(t, func() (tensor.Tensor, error) { return e.LayerNorm(x, gamma, beta, 1e-5) }, ins...)
			if c.affine {
				gf, bf := tensor.MustNew(gamma.Data(), n), tensor.MustNew(beta.Data(), n)
				gradCheck(t, func() (tensor.Tensor, error) { return e.LayerNorm(x, gf, bf, 1e-5) },
					named{"x", x}, named{"frozen gamma", gf}, named{"frozen beta", bf})
			}
		})
	}
}
