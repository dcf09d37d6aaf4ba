package edit

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// testEngine runs on 3 threads so that GEMMs split unevenly.
func testEngine() *ops.Engine {
	e := ops.NewEngine(cpu.New())
	e.B.SetThreads(3)
	return e
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 11)) }

func randn(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * r.NormFloat64())
	}
	return v
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// randSPD returns a random symmetric positive-definite C⁻¹ [d, d] with a
// condition number of a few hundred, rounded to float32 values.
func randSPD(r *rand.Rand, d int) []float64 {
	a := randn(r, d*d, 1)
	c := make([]float64, d*d)
	for i := range d {
		for j := range d {
			var s float64
			for k := range d {
				s += float64(a[i*d+k]) * float64(a[j*d+k])
			}
			c[i*d+j] = s / float64(d)
		}
		c[i*d+i] += 0.05
	}
	for i := range d { // symmetric after rounding
		for j := range i {
			v := float64(float32(c[i*d+j]))
			c[i*d+j], c[j*d+i] = v, v
		}
		c[i*d+i] = float64(float32(c[i*d+i]))
	}
	return c
}

// refConcept is one concept of the float64 reference.
type refConcept struct {
	input     []float64 // i* [D]
	beta, tau float64
	target    []float64 // [O] or [T, O]
	perPos    bool
}

// matVec is m [rows, cols] times v [cols].
func matVec(m []float64, v []float64) []float64 {
	cols := len(v)
	out := make([]float64, len(m)/cols)
	for i := range out {
		for j, x := range v {
			out[i] += m[i*cols+j] * x
		}
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// solve solves the small dense system a x = b (Gaussian elimination with
// partial pivoting), a [n, n].
func solve(a []float64, b []float64) []float64 {
	n := len(b)
	m := append([]float64(nil), a...)
	x := append([]float64(nil), b...)
	for c := range n {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r*n+c]) > math.Abs(m[p*n+c]) {
				p = r
			}
		}
		for k := range n {
			m[c*n+k], m[p*n+k] = m[p*n+k], m[c*n+k]
		}
		x[c], x[p] = x[p], x[c]
		for r := c + 1; r < n; r++ {
			f := m[r*n+c] / m[c*n+c]
			for k := c; k < n; k++ {
				m[r*n+k] -= f * m[c*n+k]
			}
			x[r] -= f * x[c]
		}
	}
	for c := n - 1; c >= 0; c-- {
		for k := c + 1; k < n; k++ {
			x[c] -= m[c*n+k] * x[k]
		}
		x[c] /= m[c*n+c]
	}
	return x
}

// refEdit is the unfolded edit of one layer in float64, straight from the
// spec: for each encoding e_n (rows of ctx [B*T, D]),
// h_n = W(e_n − P e_n) + Σ_c σ((s_c,n − β_c)/τ_c) o*_c[n], where P e is
// Σ_c s_c i*_c (sum form) or the C⁻¹-orthogonal projection onto
// span{i*_c}, solved from its Gram system (exact form).
func refEdit(ctx []float64, t, d int, w []float64, o int, cinv []float64, cs []refConcept, exact bool) []float64 {
	rows := len(ctx) / d
	us := make([][]float64, len(cs))
	es := make([]float64, len(cs))
	for c, k := range cs {
		us[c] = matVec(cinv, k.input)
		es[c] = dot(k.input, us[c])
	}
	out := make([]float64, rows*o)
	for r := range rows {
		e := ctx[r*d : (r+1)*d]
		ep := append([]float64(nil), e...)
		if exact {
			m := len(cs)
			gram := make([]float64, m*m) // ⟨i*_j, i*_k⟩
			rhs := make([]float64, m)    // ⟨i*_j, e⟩
			for j := range m {
				for k := range m {
					gram[j*m+k] = dot(cs[j].input, us[k])
				}
				rhs[j] = dot(us[j], e)
			}
			coef := solve(gram, rhs)
			for k := range m {
				for i := range ep {
					ep[i] -= coef[k] * cs[k].input[i]
				}
			}
		} else {
			for c, k := range cs {
				s := dot(e, us[c]) / es[c]
				for i := range ep {
					ep[i] -= s * k.input[i]
				}
			}
		}
		h := matVec(w, ep)
		for c, k := range cs {
			s := dot(e, us[c]) / es[c]
			g := 1 / (1 + math.Exp(-(s-k.beta)/k.tau))
			tg := k.target
			if k.perPos {
				n := r % t
				tg = k.target[n*o : (n+1)*o]
			}
			for j := range h {
				h[j] += g * tg[j]
			}
		}
		copy(out[r*o:], h)
	}
	return out
}

// checkClose compares got with want: |got-want| <= atol + rtol*|want|.
func checkClose(t testing.TB, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad, at, worst := 0, 0, 0.0
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if !(d <= atol+rtol*math.Abs(want[i])) {
			if bad == 0 || d > worst {
				at, worst = i, d
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values off (atol %g, rtol %g); worst at %d: got %g want %g", what, bad, len(want), atol, rtol, at, got[at], want[at])
	}
}

// backwardWith sets dL/dy = r and runs the backward pass from y.
func backwardWith(t testing.TB, y tensor.Tensor, r []float32) {
	t.Helper()
	tensor.AccGrad(y.Node(), append([]float32(nil), r...))
	if err := ag.Backward(y.Node()); err != nil {
		t.Fatal(err)
	}
}

// numGrad returns central differences of the float64 function loss at x,
// on the given indices of x (step h, x restored afterwards).
func numGrad(x []float64, idx []int, h float64, loss func() float64) []float64 {
	out := make([]float64, len(idx))
	for k, i := range idx {
		old := x[i]
		x[i] = old + h
		up := loss()
		x[i] = old - h
		down := loss()
		x[i] = old
		out[k] = (up - down) / (2 * h)
	}
	return out
}

// checkGrad compares analytic gradients (float32, from the operators) with
// numeric ones of the float64 reference on the sampled indices.
func checkGrad(t testing.TB, what string, got []float32, idx []int, num []float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: no gradient", what)
		return
	}
	var rms float64
	for _, v := range num {
		rms += v * v
	}
	rms = math.Sqrt(rms / float64(max(len(num), 1)))
	for k, i := range idx {
		if d := math.Abs(float64(got[i]) - num[k]); !(d <= 1e-3*math.Abs(num[k])+1e-4*rms+1e-5) {
			t.Errorf("%s[%d]: analytic %.7g, numeric %.7g", what, i, got[i], num[k])
		}
	}
}

// sample returns up to n distinct indices of [0, size).
func sample(r *rand.Rand, size, n int) []int {
	return r.Perm(size)[:min(size, n)]
}
