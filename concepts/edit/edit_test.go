package edit

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// world is a small random setting: a metric, a context with encodings
// planted along the concepts' i*, and two layers' weights and targets.
type world struct {
	b, t, d   int
	outs      []int // O of each layer
	cinv      []float64
	metric    *DenseMetric
	ctx       []float32      // [B, T, D]
	super     []float32      // [B, T, D]
	weights   [][2][]float32 // per layer: W_K, W_V [O, D]
	concepts  []*Concept
	layers    []string
	perPosAt1 bool // layer 1's targets are per position
}

func newWorld(t testing.TB, seed uint64, m int, perPos bool) *world {
	t.Helper()
	r := newRand(seed)
	w := &world{b: 3, t: 7, d: 12, outs: []int{5, 6}, perPosAt1: perPos}
	w.cinv = randSPD(r, w.d)
	var err error
	if w.metric, err = NewDenseMetric(w.cinv, w.d); err != nil {
		t.Fatal(err)
	}
	w.ctx = randn(r, w.b*w.t*w.d, 0.3)
	w.super = randn(r, w.b*w.t*w.d, 0.3)
	w.layers = []string{"input_blocks.1.1.transformer_blocks.0.attn2", "middle_block.1.transformer_blocks.0.attn2"}
	for _, o := range w.outs {
		w.weights = append(w.weights, [2][]float32{randn(r, o*w.d, 0.5), randn(r, o*w.d, 0.5)})
	}
	for c := range m {
		in := randn(r, w.d, 1)
		k := &Concept{Name: fmt.Sprintf("c%d", c), Word: fmt.Sprintf("<c%d>", c), Input: in,
			Beta: float32(0.6 + 0.1*float64(c)), Tau: float32(0.15 - 0.05*float64(c)), Layers: map[string]Targets{}}
		for l, o := range w.outs {
			n := o
			if perPos && l == 1 {
				n = w.t * o
			}
			shape := []int{o}
			if n != o {
				shape = []int{w.t, o}
			}
			k.Layers[w.layers[l]] = Targets{K: tensor.MustNew(randn(r, n, 1), shape...), V: tensor.MustNew(randn(r, n, 1), shape...)}
		}
		w.concepts = append(w.concepts, k)
		// Plant encodings alpha*i* + noise so that gates take every value.
		for i, alpha := range []float64{1, 0.75, 0.6, 0.9, 0.3} {
			row := (3*i + c + 1) % (w.b * w.t)
			for j := range w.d {
				w.ctx[row*w.d+j] = float32(alpha*float64(in[j])) + 0.05*w.ctx[row*w.d+j]
				w.super[row*w.d+j] = float32((alpha+0.1)*float64(in[j])) + 0.05*w.super[row*w.d+j]
			}
		}
	}
	return w
}

// ref returns the reference K and V of layer l for the given contexts.
func (w *world) ref(l int, kctx, vctx []float64, exact bool) (k, v []float64) {
	vt := map[string][]float64{}
	for ci, c := range w.concepts {
		vt[fmt.Sprint(ci, w.layers[l])] = f64(c.Layers[w.layers[l]].V.Data())
	}
	return w.refWith(l, kctx, vctx, exact, vt)
}

func (w *world) weight(l, x int) tensor.Tensor {
	return tensor.MustNew(w.weights[l][x], w.outs[l], w.d)
}

// The editor (folded form, float32) equals the unfolded per-layer edit of
// the spec in float64, for one and two concepts, both multi-concept forms,
// both target forms and both key locks.
func TestEditorMatchesReference(t *testing.T) {
	e := testEngine()
	for _, m := range []int{1, 2} {
		for _, perPos := range []bool{false, true} {
			for _, multi := range []Multi{Sum, Exact} {
				for _, lock := range []Lock{Local, Global} {
					name := fmt.Sprintf("m%d/perpos=%v/%v/%v", m, perPos, multi, lock)
					w := newWorld(t, uint64(7+m), m, perPos)
					ctx := tensor.MustNew(w.ctx, w.b, w.t, w.d)
					opt := Options{Multi: multi, Lock: lock}
					kctx := f64(w.ctx)
					if lock == Global {
						opt.Super = tensor.MustNew(w.super, w.b, w.t, w.d)
						kctx = f64(w.super)
					}
					ed, err := NewEditor(e, ctx, w.concepts, w.metric, opt)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					for l, layer := range w.layers {
						wantK, wantV := w.ref(l, kctx, f64(w.ctx), multi == Exact)
						k, err := ed.Project(layer, unet.Key, ctx, w.weight(l, 0))
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						v, err := ed.Project(layer, unet.Value, ctx, w.weight(l, 1))
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						checkClose(t, name+" K "+layer, k.Data(), wantK, 1e-5, 1e-4)
						checkClose(t, name+" V "+layer, v.Data(), wantV, 1e-5, 1e-4)
					}
				}
			}
		}
	}
}

// Gradients of L = Σ_l (K_l·R + V_l·R') reach the context (and the
// superclass context under global locking) and the value targets, equal
// to central differences of the float64 reference; the key targets, i* and
// the weights get none.
func TestEditorGradients(t *testing.T) {
	e := testEngine()
	for _, tc := range []struct {
		m     int
		multi Multi
		lock  Lock
	}{{1, Sum, Local}, {2, Sum, Local}, {2, Exact, Local}, {2, Sum, Global}} {
		name := fmt.Sprintf("m%d/%v/%v", tc.m, tc.multi, tc.lock)
		w := newWorld(t, 21, tc.m, true)
		r := newRand(5)
		ctx, _ := tensor.NewParam(slices.Clone(w.ctx), w.b, w.t, w.d)
		super, _ := tensor.NewParam(slices.Clone(w.super), w.b, w.t, w.d)
		opt := Options{Multi: tc.multi, Lock: tc.lock}
		if tc.lock == Global {
			opt.Super = super
		}
		// Trainable value targets (what training does).
		for _, c := range w.concepts {
			for _, layer := range w.layers {
				tg := c.Layers[layer]
				v, _ := tensor.NewParam(slices.Clone(tg.V.Data()), tg.V.Shape()...)
				c.Layers[layer] = Targets{K: tg.K, V: v}
			}
		}
		ed, err := NewEditor(e, ctx, w.concepts, w.metric, opt)
		if err != nil {
			t.Fatal(err)
		}
		var rs [][2][]float32
		var outs []mat.Tensor // one backward pass from all outputs
		for l, layer := range w.layers {
			k, err := ed.Project(layer, unet.Key, ctx, w.weight(l, 0))
			if err != nil {
				t.Fatal(err)
			}
			v, err := ed.Project(layer, unet.Value, ctx, w.weight(l, 1))
			if err != nil {
				t.Fatal(err)
			}
			rk, rv := randn(r, k.Size(), 1), randn(r, v.Size(), 1)
			rs = append(rs, [2][]float32{rk, rv})
			tensor.AccGrad(k.Node(), rk)
			tensor.AccGrad(v.Node(), rv)
			outs = append(outs, k.Node(), v.Node())
		}
		if err := ag.Backward(outs...); err != nil {
			t.Fatal(err)
		}
		// The float64 loss of the reference, on float64 copies we perturb.
		ctx64, super64 := f64(w.ctx), f64(w.super)
		vt := map[string][]float64{}
		for ci, c := range w.concepts {
			for _, layer := range w.layers {
				vt[fmt.Sprint(ci, layer)] = f64(c.Layers[layer].V.Data())
			}
		}
		loss := func() float64 {
			var s float64
			kctx := ctx64
			if tc.lock == Global {
				kctx = super64
			}
			for l := range w.layers {
				k, v := w.refWith(l, kctx, ctx64, tc.multi == Exact, vt)
				for i, x := range k {
					s += x * float64(rs[l][0][i])
				}
				for i, x := range v {
					s += x * float64(rs[l][1][i])
				}
			}
			return s
		}
		idx := sample(r, len(ctx64), 30)
		checkGrad(t, name+" context", ctx.Grad(), idx, numGrad(ctx64, idx, 1e-6, loss))
		if tc.lock == Global {
			idx := sample(r, len(super64), 30)
			checkGrad(t, name+" super", super.Grad(), idx, numGrad(super64, idx, 1e-6, loss))
		} else if super.Grad() != nil {
			t.Errorf("%s: the unused superclass context got a gradient", name)
		}
		for ci, c := range w.concepts {
			for _, layer := range w.layers {
				tg := c.Layers[layer]
				x := vt[fmt.Sprint(ci, layer)]
				idx := sample(r, len(x), 12)
				checkGrad(t, fmt.Sprintf("%s o*_V %s %s", name, c.Name, layer), tg.V.Grad(), idx, numGrad(x, idx, 1e-6, loss))
				if tg.K.RequiresGrad() || tg.K.Grad() != nil {
					t.Errorf("%s: a key target got a gradient", name)
				}
			}
		}
	}
}

// refWith is ref with the value targets taken from vt (copies that the
// gradient check perturbs), keyed by concept index and layer name.
func (w *world) refWith(l int, kctx, vctx []float64, exact bool, vt map[string][]float64) (k, v []float64) {
	layer := w.layers[l]
	for x, ctx := range [][]float64{kctx, vctx} {
		var cs []refConcept
		for ci, c := range w.concepts {
			tg := c.Layers[layer]
			tt, data := tg.K, f64(tg.K.Data())
			if x == 1 {
				tt, data = tg.V, vt[fmt.Sprint(ci, layer)]
			}
			cs = append(cs, refConcept{input: f64(c.Input), beta: float64(c.Beta), tau: float64(c.Tau), target: data, perPos: tt.Rank() == 2})
		}
		y := refEdit(ctx, w.t, w.d, f64(w.weights[l][x]), w.outs[l], w.cinv, cs, exact)
		if x == 0 {
			k = y
		} else {
			v = y
		}
	}
	return k, v
}

// The toy values of spec §3.2: s = 1 at i*, 0 for a C⁻¹-orthogonal
// encoding and α on α·i* + (orthogonal noise); the gates σ(2.5) = 0.924
// (training β, τ) and σ(2) = 0.881 (inference defaults) at i*; at i* the
// projection is g·o* (the W part vanishes), and for an orthogonal
// encoding with o* = 0 it is W e.
func TestToyValues(t *testing.T) {
	r := newRand(3)
	const d, o = 6, 4
	cinv := randSPD(r, d)
	m, err := NewDenseMetric(cinv, d)
	if err != nil {
		t.Fatal(err)
	}
	in := randn(r, d, 1)
	u := matVec(cinv, f64(in))
	energy := dot(f64(in), u)
	orth := f64(randn(r, d, 1)) // noise minus its part along i*
	a := dot(orth, u) / energy
	for i := range orth {
		orth[i] -= a * float64(in[i])
	}
	rows := [][]float64{f64(in), orth, nil}
	rows[2] = make([]float64, d)
	for i := range rows[2] {
		rows[2][i] = 0.7*float64(in[i]) + orth[i]
	}
	var ctx []float32
	for _, row := range rows {
		ctx = append(ctx, to32(row)...)
	}
	x := tensor.MustNew(ctx, 1, 3, d)
	wk := randn(r, o*d, 1)
	target := randn(r, o, 1)
	for _, tc := range []struct{ beta, tau, gate float64 }{{TrainBeta, TrainTau, 0.9241418}, {InferenceBeta, InferenceTau, 0.8807971}} {
		c := &Concept{Name: "toy", Input: in, Beta: float32(tc.beta), Tau: float32(tc.tau),
			Layers: map[string]Targets{"l": {K: tensor.MustNew(target, o), V: tensor.Zeros(o)}}}
		s, err := Similarity(x, c, m)
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, "similarity", s, []float64{1, 0, 0.7}, 1e-5, 0)
		ed, err := NewEditor(testEngine(), x, []*Concept{c}, m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		g := ed.Gates()[0].Data()
		if math.Abs(float64(g[0])-tc.gate) > 1e-5 {
			t.Errorf("β %g τ %g: gate at i* = %g, want %g", tc.beta, tc.tau, g[0], tc.gate)
		}
		k, err := ed.Project("l", unet.Key, x, tensor.MustNew(wk, o, d))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, o)
		for j := range want {
			want[j] = float64(g[0]) * float64(target[j])
		}
		checkClose(t, "K at i*", k.Data()[:o], want, 1e-5, 1e-5)
		v, err := ed.Project("l", unet.Value, x, tensor.MustNew(wk, o, d)) // o*_V = 0
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, "V of an orthogonal encoding with o* = 0", v.Data()[o:2*o], matVec(f64(wk), orth), 1e-5, 1e-5)
	}
}

// Replacing the gate g by the similarity s turns the edit into ROME's
// weight edit (spec §3.1, §11.2): (W + (o* − W i*)(C⁻¹i*)ᵀ/E) e.
func TestROMEEquivalence(t *testing.T) {
	w := newWorld(t, 4, 1, false)
	c := w.concepts[0]
	x := tensor.MustNew(w.ctx, w.b, w.t, w.d)
	s, err := Similarity(x, c, w.metric)
	if err != nil {
		t.Fatal(err)
	}
	gs, _, err := gatings(w.concepts, w.metric, w.d)
	if err != nil {
		t.Fatal(err)
	}
	xf, err := Fold(x, [][]float32{c.Input}, [][]float32{gs[0].w})
	if err != nil {
		t.Fatal(err)
	}
	o := w.outs[0]
	target := c.Layers[w.layers[0]].V
	y, err := Project(testEngine(), xf, w.weight(0, 1), []tensor.Tensor{tensor.MustNew(s, w.b, w.t)}, []tensor.Tensor{target})
	if err != nil {
		t.Fatal(err)
	}
	// ROME's edited weight, in float64.
	wv := f64(w.weights[0][1])
	in := f64(c.Input)
	u := matVec(w.cinv, in)
	energy := dot(in, u)
	wi := matVec(wv, in)
	edited := slices.Clone(wv)
	for i := range o {
		for j := range w.d {
			edited[i*w.d+j] += (float64(target.Data()[i]) - wi[i]) * u[j] / energy
		}
	}
	checkClose(t, "gate := s", y.Data(), matVecRows(edited, f64(w.ctx), w.d), 1e-5, 1e-4)
}

// matVecRows applies m [O, D] to every row of x [rows, D].
func matVecRows(m, x []float64, d int) []float64 {
	var out []float64
	for r := 0; r < len(x)/d; r++ {
		out = append(out, matVec(m, x[r*d:(r+1)*d])...)
	}
	return out
}

// The exact and the sum forms agree when the i*s are C⁻¹-orthogonal
// (spec §3.5, §11.5), and differ otherwise.
func TestExactEqualsSumWhenOrthogonal(t *testing.T) {
	e := testEngine()
	w := newWorld(t, 9, 2, false)
	x := tensor.MustNew(w.ctx, w.b, w.t, w.d)
	project := func(multi Multi) []float32 {
		ed, err := NewEditor(e, x, w.concepts, w.metric, Options{Multi: multi})
		if err != nil {
			t.Fatal(err)
		}
		v, err := ed.Project(w.layers[0], unet.Value, x, w.weight(0, 1))
		if err != nil {
			t.Fatal(err)
		}
		return v.Data()
	}
	if d := maxDiff(project(Sum), project(Exact)); d < 1e-3 {
		t.Errorf("non-orthogonal i*s: the forms differ by only %g", d)
	}
	// Make i*_2 C⁻¹-orthogonal to i*_1.
	a, b := f64(w.concepts[0].Input), f64(w.concepts[1].Input)
	u := matVec(w.cinv, a)
	k := dot(b, u) / dot(a, u)
	for i := range b {
		b[i] -= k * a[i]
	}
	w.concepts[1].Input = to32(b)
	if c := dot(b, u); math.Abs(c) > 1e-5 {
		t.Fatalf("not orthogonal: %g", c)
	}
	sum, exact := project(Sum), project(Exact)
	if d := maxDiff(sum, exact); d > 1e-5 {
		t.Errorf("C⁻¹-orthogonal i*s: the forms differ by %g", d)
	}
}

func maxDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// Rows are edited independently: a batch (e.g. the CFG batch [uncond;
// cond] with B > 1) gives, row by row, what each row alone gives.
func TestBatchRowsIndependent(t *testing.T) {
	e := testEngine()
	w := newWorld(t, 12, 2, true)
	x := tensor.MustNew(w.ctx, w.b, w.t, w.d)
	ed, err := NewEditor(e, x, w.concepts, w.metric, Options{Multi: Exact})
	if err != nil {
		t.Fatal(err)
	}
	all, err := ed.Project(w.layers[1], unet.Value, x, w.weight(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	n := w.t * w.outs[1]
	for b := range w.b {
		one := tensor.MustNew(w.ctx[b*w.t*w.d:(b+1)*w.t*w.d], 1, w.t, w.d)
		ed1, err := NewEditor(e, one, w.concepts, w.metric, Options{Multi: Exact})
		if err != nil {
			t.Fatal(err)
		}
		y, err := ed1.Project(w.layers[1], unet.Value, one, w.weight(1, 1))
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(y.Data(), all.Data()[b*n:(b+1)*n]); d > 1e-6 {
			t.Errorf("row %d differs from the batch by %g", b, d)
		}
	}
}
