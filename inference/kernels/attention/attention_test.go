package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// pool is a Runner on plain goroutines, so these tests do not depend on a
// backend.
type pool int

func (n pool) Threads() int { return int(n) }

func (n pool) Parallel(count int, fn func(lo, hi int)) {
	t := min(int(n), count)
	if t <= 1 {
		if count > 0 {
			fn(0, count)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := ceilDiv(count, t)
	for lo := 0; lo < count; lo += chunk {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, min(lo+chunk, count))
		}()
	}
	wg.Wait()
}

func randn(rng *rand.Rand, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * std)
	}
	return x
}

// cases covers odd token counts, cross-attention, odd head widths, 1-8
// heads, causal masks and several waves of heads.
func cases(short bool) []Problem {
	ps := []Problem{
		{B: 2, Tq: 1, Tk: 1, Heads: 1, Dh: 8, Dv: 8},
		{B: 2, Tq: 7, Tk: 7, Heads: 2, Dh: 33, Dv: 33, Causal: true},
		{B: 2, Tq: 7, Tk: 77, Heads: 2, Dh: 40, Dv: 40},
		{B: 2, Tq: 77, Tk: 77, Heads: 8, Dh: 8, Dv: 8, Causal: true},
		{B: 2, Tq: 129, Tk: 77, Heads: 8, Dh: 40, Dv: 40},
		{B: 1, Tq: 129, Tk: 129, Heads: 1, Dh: 33, Dv: 20, Causal: true},
		{B: 2, Tq: 300, Tk: 300, Heads: 2, Dh: 40, Dv: 40},
		{B: 1, Tq: 300, Tk: 300, Heads: 2, Dh: 64, Dv: 64, Causal: true},
	}
	if short {
		ps = ps[:6]
	}
	for i := range ps {
		ps[i].Scale = float32(1 / math.Sqrt(float64(ps[i].Dh)))
	}
	return ps
}

func name(p Problem) string {
	return fmt.Sprintf("B%d_Tq%d_Tk%d_H%d_Dh%d_Dv%d_causal%v", p.B, p.Tq, p.Tk, p.Heads, p.Dh, p.Dv, p.Causal)
}

func inputs(p Problem, seed uint64) (q, k, v []float32) {
	rng := rand.New(rand.NewPCG(seed, 7))
	nq, nk, nv, _ := p.lens()
	// std 2 makes the softmax peaked enough to matter.
	return randn(rng, nq, 2), randn(rng, nk, 2), randn(rng, nv, 1)
}

// closeTo fails when |got-want| > tol·(|want| + max(max|want|, 0.01)),
// that is a relative tolerance with a floor at tol times the largest
// magnitude (inputs are O(1), so 0.01 only matters where all wants are ~0,
// as for dQ and dK with a single key).
func closeTo(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	big := 0.01
	for _, w := range want {
		big = math.Max(big, math.Abs(w))
	}
	bad := 0
	for i, w := range want {
		g := float64(got[i])
		if !(math.Abs(g-w) <= tol*(math.Abs(w)+big)) {
			if bad < 3 {
				t.Errorf("%s[%d] = %v, want %v", what, i, g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values off (max |want| %v)", what, bad, len(want), big)
	}
}

// kernelSets are the sets this machine runs, so that each is tested where
// it can run (the AVX2 and Go sets on an AVX-512 machine too).
func kernelSets() []kernels { return available() }

func TestForwardMatchesReference(t *testing.T) {
	for _, kn := range kernelSets() {
		for i, p := range cases(testing.Short()) {
			t.Run(kn.name+"/"+name(p), func(t *testing.T) {
				q, k, v := inputs(p, uint64(i))
				want, wantLSE := Reference(p, q, k, v)
				for _, threads := range []int{1, 3} {
					_, _, _, no := p.lens()
					out := make([]float32, no)
					lse := make([]float32, p.LSELen())
					buf := testBuffers(t, threads)
					if err := forward(kn, pool(threads), buf, p, q, k, v, out, lse); err != nil {
						t.Fatal(err)
					}
					closeTo(t, fmt.Sprintf("out(threads=%d)", threads), out, want, 1e-5)
					closeTo(t, fmt.Sprintf("lse(threads=%d)", threads), lse, wantLSE, 1e-5)
				}
			})
		}
	}
}

// refBackward is the float64 gradient of sum(out ∘ dout) from the full
// probability matrix: dV = Pᵀ dO, dP = dO Vᵀ, dS = scale·P∘(dP - rowsum(P∘dP)),
// dQ = dS K, dK = dSᵀ Q.
func refBackward(p Problem, q, k, v, dout []float32) (dq, dk, dv []float64) {
	H, Dh, Dv := p.Heads, p.Dh, p.Dv
	nq, nk, nv, _ := p.lens()
	dq, dk, dv = make([]float64, nq), make([]float64, nk), make([]float64, nv)
	P := make([]float64, p.Tk)
	dP := make([]float64, p.Tk)
	for b := range p.B {
		for h := range H {
			for i := range p.Tq {
				qi := q[headRow(b, i, h, p.Tq, H, Dh):][:Dh]
				doi := dout[headRow(b, i, h, p.Tq, H, Dv):][:Dv]
				m := math.Inf(-1)
				for j := range p.Tk {
					P[j] = math.Inf(-1)
					if p.Causal && j > i {
						continue
					}
					var dot float64
					for c, kc := range k[headRow(b, j, h, p.Tk, H, Dh):][:Dh] {
						dot += float64(qi[c]) * float64(kc)
					}
					P[j] = float64(p.Scale) * dot
					m = math.Max(m, P[j])
				}
				var sum float64
				for j := range P {
					P[j] = math.Exp(P[j] - m)
					sum += P[j]
				}
				var pdp float64
				for j := range P {
					P[j] /= sum
					var d float64
					for c, vc := range v[headRow(b, j, h, p.Tk, H, Dv):][:Dv] {
						d += float64(doi[c]) * float64(vc)
					}
					dP[j] = d
					pdp += P[j] * d
				}
				for j := range P {
					ds := float64(p.Scale) * P[j] * (dP[j] - pdp)
					kr := headRow(b, j, h, p.Tk, H, Dh)
					for c := range Dh {
						dq[headRow(b, i, h, p.Tq, H, Dh)+c] += ds * float64(k[kr+c])
						dk[kr+c] += ds * float64(qi[c])
					}
					vr := headRow(b, j, h, p.Tk, H, Dv)
					for c := range Dv {
						dv[vr+c] += P[j] * float64(doi[c])
					}
				}
			}
		}
	}
	return dq, dk, dv
}

func TestBackwardMatchesReference(t *testing.T) {
	for _, kn := range kernelSets() {
		for i, p := range cases(testing.Short()) {
			t.Run(kn.name+"/"+name(p), func(t *testing.T) {
				q, k, v := inputs(p, uint64(i))
				nq, nk, nv, no := p.lens()
				dout := randn(rand.New(rand.NewPCG(uint64(i), 8)), no, 1)
				wq, wk, wv := refBackward(p, q, k, v, dout)
				out := make([]float32, no)
				lse := make([]float32, p.LSELen())
				if err := forward(kn, pool(2), nil, p, q, k, v, out, lse); err != nil {
					t.Fatal(err)
				}
				for _, threads := range []int{1, 3} {
					dq, dk, dv := make([]float32, nq), make([]float32, nk), make([]float32, nv)
					buf := testBuffers(t, threads)
					if err := backward(kn, pool(threads), buf, p, q, k, v, out, lse, dout, dq, dk, dv); err != nil {
						t.Fatal(err)
					}
					closeTo(t, fmt.Sprintf("dq(threads=%d)", threads), dq, wq, 1e-4)
					closeTo(t, fmt.Sprintf("dk(threads=%d)", threads), dk, wk, 1e-4)
					closeTo(t, fmt.Sprintf("dv(threads=%d)", threads), dv, wv, 1e-4)
				}
				// Each gradient alone gives the same values.
				dk := make([]float32, nk)
				if err := backward(kn, pool(2), testBuffers(t, 2), p, q, k, v, out, lse, dout, nil, dk, nil); err != nil {
					t.Fatal(err)
				}
				closeTo(t, "dk alone", dk, wk, 1e-4)
			})
		}
	}
}
