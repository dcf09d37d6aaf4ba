package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/kernels/attention"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// attnShape is one attention call: q [B, Tq, H*Dh], k [B, Tk, H*Dh],
// v [B, Tk, H*Dv].
type attnShape struct {
	B, Tq, Tk, H, Dh, Dv int
	causal               bool
}

func (s attnShape) String() string {
	return fmt.Sprintf("B%d_Tq%d_Tk%d_H%d_Dh%d_Dv%d_causal%v", s.B, s.Tq, s.Tk, s.H, s.Dh, s.Dv, s.causal)
}

// attnInputs are random q, k, v; q and k have std 1.5 so that the softmax
// is far from uniform.
func attnInputs(s attnShape, seed uint64, grad [3]bool) (q, k, v tensor.Tensor) {
	rng := rand.New(rand.NewPCG(seed, 11))
	mk := func(std float64, g bool, shape ...int) tensor.Tensor {
		x := make([]float32, tensor.Numel(shape))
		for i := range x {
			x[i] = float32(rng.NormFloat64() * std)
		}
		if g {
			t, _ := tensor.NewParam(x, shape...)
			return t
		}
		return tensor.MustNew(x, shape...)
	}
	return mk(1.5, grad[0], s.B, s.Tq, s.H*s.Dh), mk(1.5, grad[1], s.B, s.Tk, s.H*s.Dh), mk(1, grad[2], s.B, s.Tk, s.H*s.Dv)
}

func attnEngine() *Engine {
	e := NewEngine(cpu.New())
	e.B.SetThreads(3)
	return e
}

func TestAttentionMatchesReference(t *testing.T) {
	e := attnEngine()
	shapes := []attnShape{
		{2, 1, 1, 1, 8, 8, false},
		{2, 7, 7, 2, 33, 33, true},
		{2, 77, 77, 8, 8, 8, true},     // CLIP-like, causal
		{2, 129, 77, 8, 40, 40, false}, // cross-attention to 77 tokens
		{1, 300, 300, 2, 40, 24, false},
		{2, 300, 300, 1, 64, 64, true},
	}
	for i, s := range shapes {
		t.Run(s.String(), func(t *testing.T) {
			q, k, v := attnInputs(s, uint64(i), [3]bool{})
			scale := float32(1 / math.Sqrt(float64(s.Dh)))
			out, err := e.Attention(q, k, v, s.H, scale, s.causal)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := out.Shape(), []int{s.B, s.Tq, s.H * s.Dv}; !tensor.SameShape(got, want) {
				t.Fatalf("shape %v, want %v", got, want)
			}
			p := attention.Problem{B: s.B, Tq: s.Tq, Tk: s.Tk, Heads: s.H, Dh: s.Dh, Dv: s.Dv, Scale: scale, Causal: s.causal}
			want, _ := attention.Reference(p, q.Data(), k.Data(), v.Data())
			var big float64
			for _, w := range want {
				big = math.Max(big, math.Abs(w))
			}
			for j, g := range out.Data() {
				if d := math.Abs(float64(g) - want[j]); !(d <= 1e-5*(math.Abs(want[j])+big)) {
					t.Fatalf("out[%d] = %v, want %v", j, g, want[j])
				}
			}
		})
	}
}

// TestAttentionGradients checks dL/dq, dL/dk, dL/dv of L = sum(out ∘ R)
// against float64 central differences of the float32 op, on every element:
// a dropped or wrong term (the rowsum D, the scale, the mask) moves many
// elements far beyond the 1e-2 relative tolerance. Frozen operands must get
// no gradient.
func TestAttentionGradients(t *testing.T) {
	e := attnEngine()
	cases := []struct {
		s    attnShape
		grad [3]bool
	}{
		{attnShape{2, 5, 9, 2, 4, 3, false}, [3]bool{true, true, true}}, // cross, Dv != Dh
		{attnShape{2, 7, 7, 2, 5, 5, true}, [3]bool{true, true, true}},  // causal
		{attnShape{1, 6, 6, 1, 3, 3, false}, [3]bool{false, true, false}},
		{attnShape{1, 4, 11, 3, 2, 2, false}, [3]bool{true, false, true}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%v_grad%v", c.s, c.grad), func(t *testing.T) {
			q, k, v := attnInputs(c.s, uint64(10+i), c.grad)
			scale := float32(0.7)
			fwd := func() tensor.Tensor {
				out, err := e.Attention(q, k, v, c.s.H, scale, c.s.causal)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			out := fwd()
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			r := make([]float32, out.Size())
			for j := range r {
				r[j] = float32(rng.NormFloat64())
			}
			loss := func() float64 {
				var l float64
				for j, o := range fwd().Data() {
					l += float64(o) * float64(r[j])
				}
				return l
			}
			tensor.AccGrad(out.Node(), append([]float32(nil), r...))
			if err := ag.Backward(out.Node()); err != nil {
				t.Fatal(err)
			}
			for j, x := range []tensor.Tensor{q, k, v} {
				name := []string{"q", "k", "v"}[j]
				g := x.Grad()
				if !c.grad[j] {
					if g != nil {
						t.Errorf("%s: frozen operand got a gradient", name)
					}
					continue
				}
				if g == nil {
					t.Fatalf("%s: no gradient", name)
				}
				attnCheckFD(t, name, x.Data(), g, loss)
			}
		})
	}
}

// attnCheckFD compares the analytic gradient g of loss wrt every element
// of data with central differences (step 1e-2): |g - num| <= 1e-2·(|num| +
// rms(num)).
func attnCheckFD(t *testing.T, name string, data, g []float32, loss func() float64) {
	t.Helper()
	num := make([]float64, len(data))
	var rms float64
	for i, x := range data {
		data[i] = x + 1e-2
		hp := float64(data[i]) - float64(x)
		lp := loss()
		data[i] = x - 1e-2
		hm := float64(data[i]) - float64(x)
		lm := loss()
		data[i] = x
		num[i] = (lp - lm) / (hp - hm)
		rms += num[i] * num[i]
	}
	rms = math.Sqrt(rms / float64(len(num)))
	bad := 0
	for i, n := range num {
		if d := math.Abs(float64(g[i]) - n); !(d <= 1e-2*(math.Abs(n)+rms)) {
			if bad < 3 {
				t.Errorf("d%s[%d]: analytic %.6g, numeric %.6g", name, i, g[i], n)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("d%s: %d of %d off", name, bad, len(num))
	}
}

// TestAttentionNoGrad checks that inference builds no graph.
func TestAttentionNoGrad(t *testing.T) {
	q, k, v := attnInputs(attnShape{1, 3, 4, 1, 2, 2, false}, 1, [3]bool{})
	out, err := attnEngine().Attention(q, k, v, 1, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, leaf := out.Node().(*mat.Dense[float32]); !leaf || out.RequiresGrad() {
		t.Errorf("output is %T (requires grad %v), want a constant leaf", out.Node(), out.RequiresGrad())
	}
}

func TestAttentionShapeErrors(t *testing.T) {
	e := attnEngine()
	z := func(s ...int) tensor.Tensor { return tensor.Zeros(s...) }
	var none tensor.Tensor
	cases := []struct {
		q, k, v tensor.Tensor
		heads   int
		scale   float32
		causal  bool
		names   []string
	}{
		{z(2, 5, 8), z(2, 6, 8), z(2, 7, 8), 2, 1, false, []string{"[2 5 8]", "[2 6 8]", "[2 7 8]", "token counts"}},
		{z(2, 5, 8), z(1, 6, 8), z(1, 6, 8), 2, 1, false, []string{"[1 6 8]", "batch"}},
		{z(2, 5, 8), z(2, 6, 6), z(2, 6, 8), 2, 1, false, []string{"[2 6 6]", "channels"}},
		{z(2, 5, 9), z(2, 6, 9), z(2, 6, 9), 2, 1, false, []string{"[2 5 9]", "heads=2"}},
		{z(2, 5, 8), z(2, 6, 8), z(2, 6, 8), 2, 1, true, []string{"[2 5 8]", "causal"}},
		{z(2, 5, 8), z(2, 6, 8), z(2, 6, 8), 0, 1, false, []string{"heads=0"}},
		{z(2, 5, 8), z(2, 6, 8), z(2, 6, 8), 2, 0, false, []string{"scale"}},
		{z(2, 5, 8), z(2, 6, 8), z(2, 6, 8), 2, float32(math.NaN()), false, []string{"scale"}},
		{z(10, 8), z(2, 6, 8), z(2, 6, 8), 2, 1, false, []string{"[10 8]", "[B, T, C]"}},
		{z(2, 0, 8), z(2, 6, 8), z(2, 6, 8), 2, 1, false, []string{"[2 0 8]", "empty"}},
		{z(2, 5, 8), none, z(2, 6, 8), 2, 1, false, []string{"missing"}},
	}
	for i, c := range cases {
		_, err := e.Attention(c.q, c.k, c.v, c.heads, c.scale, c.causal)
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "ops: attention:") {
			t.Errorf("case %d: error %q lacks the prefix", i, msg)
		}
		for _, n := range c.names {
			if !strings.Contains(msg, n) {
				t.Errorf("case %d: error %q does not mention %s", i, msg, n)
			}
		}
	}
}
