package edit

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// Each operator's own gradients against central differences of float64
// references of the operator.
func TestOperatorGradients(t *testing.T) {
	e := testEngine()
	r := newRand(8)
	const b, tt, d, o = 2, 3, 5, 4
	xs := randn(r, b*tt*d, 1)
	dirs := [][]float32{randn(r, d, 1), randn(r, d, 1)}
	ws := [][]float32{randn(r, d, 0.5), randn(r, d, 0.5)}
	x64 := f64(xs)

	// Fold.
	x, _ := tensor.NewParam(slices.Clone(xs), b, tt, d)
	y, err := Fold(x, dirs, ws)
	if err != nil {
		t.Fatal(err)
	}
	ry := randn(r, y.Size(), 1)
	refFold := func() []float64 {
		out := slices.Clone(x64)
		for row := 0; row < b*tt; row++ {
			v := x64[row*d : (row+1)*d]
			for k := range dirs {
				c := dot(f64(ws[k]), v)
				for j := range d {
					out[row*d+j] -= c * float64(dirs[k][j])
				}
			}
		}
		return out
	}
	checkClose(t, "fold", y.Data(), refFold(), 1e-6, 1e-5)
	backwardWith(t, y, ry)
	idx := sample(r, len(x64), 20)
	checkGrad(t, "fold dx", x.Grad(), idx, numGrad(x64, idx, 1e-6, func() float64 { return dot(refFold(), f64(ry)) }))

	// Gate.
	x, _ = tensor.NewParam(slices.Clone(xs), b, tt, d)
	const beta, tau = 0.2, 0.7
	g, err := Gate(x, ws[0], beta, tau)
	if err != nil {
		t.Fatal(err)
	}
	refGate := func() []float64 {
		out := make([]float64, b*tt)
		for row := range out {
			s := dot(f64(ws[0]), x64[row*d:(row+1)*d])
			out[row] = 1 / (1 + math.Exp(-(s-beta)/tau))
		}
		return out
	}
	checkClose(t, "gate", g.Data(), refGate(), 1e-6, 1e-5)
	rg := randn(r, g.Size(), 1)
	backwardWith(t, g, rg)
	checkGrad(t, "gate dx", x.Grad(), idx, numGrad(x64, idx, 1e-6, func() float64 { return dot(refGate(), f64(rg)) }))

	// Project, with a broadcast and a per-position target, all operands
	// requiring gradients (W included, which the edit never trains).
	x, _ = tensor.NewParam(slices.Clone(xs), b, tt, d)
	wd := randn(r, o*d, 1)
	wt, _ := tensor.NewParam(slices.Clone(wd), o, d)
	gd := [][]float32{randn(r, b*tt, 1), randn(r, b*tt, 1)}
	td := [][]float32{randn(r, o, 1), randn(r, tt*o, 1)}
	g0, _ := tensor.NewParam(slices.Clone(gd[0]), b, tt)
	g1, _ := tensor.NewParam(slices.Clone(gd[1]), b, tt)
	t0, _ := tensor.NewParam(slices.Clone(td[0]), o)
	t1, _ := tensor.NewParam(slices.Clone(td[1]), tt, o)
	p, err := Project(e, x, wt, []tensor.Tensor{g0, g1}, []tensor.Tensor{t0, t1})
	if err != nil {
		t.Fatal(err)
	}
	w64, g64 := f64(wd), [][]float64{f64(gd[0]), f64(gd[1])}
	t64 := [][]float64{f64(td[0]), f64(td[1])}
	refProject := func() []float64 {
		out := matVecRows(w64, x64, d)
		for row := 0; row < b*tt; row++ {
			n := row % tt
			for j := range o {
				out[row*o+j] += g64[0][row]*t64[0][j] + g64[1][row]*t64[1][n*o+j]
			}
		}
		return out
	}
	checkClose(t, "project", p.Data(), refProject(), 1e-5, 1e-5)
	rp := randn(r, p.Size(), 1)
	backwardWith(t, p, rp)
	lossP := func() float64 { return dot(refProject(), f64(rp)) }
	for _, c := range []struct {
		name string
		got  tensor.Tensor
		x    []float64
	}{{"dx", x, x64}, {"dW", wt, w64}, {"dg0", g0, g64[0]}, {"dg1", g1, g64[1]}, {"dt0", t0, t64[0]}, {"dt1", t1, t64[1]}} {
		idx := sample(r, len(c.x), 15)
		checkGrad(t, "project "+c.name, c.got.Grad(), idx, numGrad(c.x, idx, 1e-6, lossP))
	}
}

// Bad input gives clear errors, never a panic.
func TestErrors(t *testing.T) {
	e := testEngine()
	w := newWorld(t, 2, 1, false)
	x := tensor.MustNew(w.ctx, w.b, w.t, w.d)
	c := w.concepts[0]
	bad := func(what string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", what, err, want)
		}
	}
	_, err := NewEditor(e, x, nil, w.metric, Options{})
	bad("no concepts", err, "at least one concept")
	_, err = NewEditor(e, x, w.concepts, nil, Options{})
	bad("no metric", err, "metric")
	_, err = NewEditor(e, x, w.concepts, w.metric, Options{Lock: Global})
	bad("global without super", err, "superclass")
	cc := *c
	cc.Tau = 0
	_, err = NewEditor(e, x, []*Concept{&cc}, w.metric, Options{})
	bad("tau 0", err, "tau")
	cc = *c
	cc.Input = c.Input[:3]
	_, err = NewEditor(e, x, []*Concept{&cc}, w.metric, Options{})
	bad("short i*", err, "i* has 3 values")
	cc = *c
	cc.Input = make([]float32, w.d)
	_, err = NewEditor(e, x, []*Concept{&cc}, w.metric, Options{})
	bad("zero i*", err, "want > 0")
	twin := *c
	twin.Name = "twin"
	_, err = NewEditor(e, x, []*Concept{c, &twin}, w.metric, Options{Multi: Exact})
	bad("parallel i*s, exact form", err, "combination")
	ed, err := NewEditor(e, x, w.concepts, w.metric, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ed.Project("nope.attn2", unet.Key, x, w.weight(0, 0))
	bad("unknown layer", err, "no targets for layer")
	other := tensor.MustNew(slices.Clone(w.ctx), w.b, w.t, w.d)
	_, err = ed.Project(w.layers[0], unet.Key, other, w.weight(0, 0))
	bad("another context", err, "another")
	_, err = ed.Project(w.layers[0], unet.Key, x, w.weight(1, 0))
	bad("weight of another layer", err, "target 0")
	_, err = InitTargets([]unet.CrossAttention{{Name: "l", ToK: w.weight(0, 0), ToV: w.weight(0, 1)}}, c.Input[:3])
	bad("init targets of another width", err, "encoding of 3 values")
	_, err = NewDenseMetric([]float64{1, 2, 3}, 2)
	bad("metric size", err, "want 4")
	_, err = NewDenseMetric([]float64{1, 2, 0, 1}, 2)
	bad("asymmetric metric", err, "symmetric")
	_, err = Gate(x, c.Input, 0.5, float32(math.NaN()))
	bad("gate NaN tau", err, "tau")
	_, err = Fold(x, [][]float32{c.Input}, nil)
	bad("fold pairs", err, "1 directions and 0 weights")
}
