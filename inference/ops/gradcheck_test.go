package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// testEngine runs on 3 threads so that work splits unevenly even on a
// 2-core machine.
func testEngine() *Engine {
	e := NewEngine(cpu.New())
	e.B.SetThreads(3)
	return e
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 7)) }

func randn(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// param is a random tensor that requires gradients.
func param(t testing.TB, r *rand.Rand, shape ...int) tensor.Tensor {
	t.Helper()
	p, err := tensor.NewParam(randn(r, tensor.Numel(shape)), shape...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// frozen is a random constant tensor (no gradients).
func frozen(r *rand.Rand, shape ...int) tensor.Tensor {
	return tensor.MustNew(randn(r, tensor.Numel(shape)), shape...)
}

// f64 widens a float32 slice.
func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// checkClose compares got with a float64 reference: |got-want| <= atol +
// rtol*|want| elementwise, reporting the worst element.
func checkClose(t testing.TB, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	bad, worst, at := 0, 0.0, 0
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if !(d <= atol+rtol*math.Abs(want[i])) {
			bad++
			if d > worst || math.IsNaN(d) {
				worst, at = d, i
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values off (atol %g rtol %g); worst at %d: got %g want %g",
			what, bad, len(want), atol, rtol, at, got[at], want[at])
	}
}

// must returns a function that passes a result through, failing the test
// on an error: y := must(t)(e.Op(x)).
func must(tb testing.TB) func(tensor.Tensor, error) tensor.Tensor {
	return func(t tensor.Tensor, err error) tensor.Tensor {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return t
	}
}

// named labels an operand of a gradient check.
type named struct {
	name string
	t    tensor.Tensor
}

// gradCheck checks the backward pass of fwd with the loss L = sum(out*R),
// R random: every operand that requires gradients must receive dL/dx equal
// to float64 central differences of the float32 forward (on up to 40
// sampled elements), and every other operand must receive none.
func gradCheck(t *testing.T, fwd func() (tensor.Tensor, error), ins ...named) {
	t.Helper()
	for _, in := range ins {
		in.t.ZeroGrad()
	}
	out, err := fwd()
	if err != nil {
		t.Fatal(err)
	}
	r := newRand(uint64(out.Size()))
	rw := randn(r, out.Size())
	loss := func() float64 {
		o, err := fwd()
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for i, v := range o.Data() {
			s += float64(v) * float64(rw[i])
		}
		return s
	}
	tensor.AccGrad(out.Node(), append([]float32(nil), rw...))
	if err := ag.Backward(out.Node()); err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		g := in.t.Grad()
		if !in.t.RequiresGrad() {
			if g != nil {
				t.Errorf("%s: frozen operand received a gradient", in.name)
			}
			continue
		}
		if g == nil {
			t.Errorf("%s: no gradient", in.name)
			continue
		}
		g = append([]float32(nil), g...)
		data := in.t.Data()
		idx := r.Perm(len(data))[:min(len(data), 40)]
		num := make([]float64, len(idx))
		var rms float64
		for k, i := range idx {
			orig := data[i]
			data[i] = orig + 1e-2
			hp := float64(data[i]) - float64(orig)
			lp := loss()
			data[i] = orig - 1e-2
			hm := float64(data[i]) - float64(orig)
			lm := loss()
			data[i] = orig
			num[k] = (lp - lm) / (hp - hm)
			rms += num[k] * num[k]
		}
		rms = math.Sqrt(rms / float64(len(idx)))
		bad := []string{}
		for k, i := range idx {
			if d := math.Abs(float64(g[i]) - num[k]); !(d <= 1e-2*math.Abs(num[k])+2e-3*rms+1e-4) {
				bad = append(bad, fmt.Sprintf("[%d] analytic %.6g numeric %.6g", i, g[i], num[k]))
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s: %d of %d sampled gradients off: %s", in.name, len(bad), len(idx), strings.Join(bad[:min(len(bad), 4)], "; "))
		}
	}
	for _, in := range ins {
		in.t.ZeroGrad()
	}
}

// backward runs ag.Backward from y, whose output gradient is already set.
func backward(tb testing.TB, y tensor.Tensor) {
	tb.Helper()
	if err := ag.Backward(y.Node()); err != nil {
		tb.Fatal(err)
	}
}
