package covariance

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func randEnc(r *rand.Rand, tokens, d int) []float32 {
	v := make([]float32, tokens*d)
	for i := range v {
		v[i] = float32(r.NormFloat64() * (1 + float64(i%d)/float64(d)))
	}
	return v
}

// refMoment is the float64 reference (1/captions) Σ e eᵀ with plain loops.
func refMoment(enc []float32, d, captions int) []float64 {
	c := make([]float64, d*d)
	for t := 0; t < len(enc)/d; t++ {
		e := enc[t*d : (t+1)*d]
		for i := range d {
			for j := range d {
				c[i*d+j] += float64(e[i]) * float64(e[j])
			}
		}
	}
	for i := range c {
		c[i] /= float64(captions)
	}
	return c
}

func TestAccumulatorMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, d := range []int{1, 3, 4, 13, 37, 64} {
		for _, workers := range []int{1, 2, 3} {
			a, err := NewAccumulator(d, workers)
			if err != nil {
				t.Fatal(err)
			}
			var all []float32
			for _, tokens := range []int{77, 300, 1, 154} { // crosses chunk boundaries
				enc := randEnc(r, tokens, d)
				all = append(all, enc...)
				if err := a.Add(enc, 1+tokens/77); err != nil {
					t.Fatal(err)
				}
			}
			got, err := a.Matrix()
			if err != nil {
				t.Fatal(err)
			}
			want := refMoment(all, d, a.Captions())
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-12*(1+math.Abs(want[i])) {
					t.Fatalf("d=%d workers=%d: C[%d] = %v, want %v", d, workers, i, got[i], want[i])
				}
			}
			if a.Tokens() != int64(len(all)/d) {
				t.Errorf("tokens %d, want %d", a.Tokens(), len(all)/d)
			}
		}
	}
}

func TestAccumulatorSameForAnyWorkers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	enc := randEnc(r, 500, 50)
	var first []float64
	for _, w := range []int{1, 2, 7} {
		a, _ := NewAccumulator(50, w)
		a.Add(enc, 7)
		m, _ := a.Matrix()
		if first == nil {
			first = m
		} else if !slices.Equal(m, first) {
			t.Errorf("workers %d: result differs bitwise from 1 worker", w)
		}
	}
}

func TestAccumulatorErrors(t *testing.T) {
	if _, err := NewAccumulator(0, 1); err == nil {
		t.Error("width 0: no error")
	}
	a, _ := NewAccumulator(4, 1)
	if err := a.Add(make([]float32, 6), 1); err == nil {
		t.Error("ragged rows: no error")
	}
	bad := make([]float32, 8)
	bad[5] = float32(math.NaN())
	if err := a.Add(bad, 1); err == nil || a.Tokens() != 0 {
		t.Error("NaN: no error, or it was added")
	}
	if _, err := a.Matrix(); err == nil {
		t.Error("Matrix of nothing: no error")
	}
}

// jacobi is the float64 reference for eigenvalues: cyclic Jacobi rotations.
func jacobi(c []float64, n int) []float64 {
	a := slices.Clone(c)
	for sweep := 0; sweep < 100; sweep++ {
		off := 0.0
		for p := range n {
			for q := p + 1; q < n; q++ {
				off += a[p*n+q] * a[p*n+q]
			}
		}
		if off < 1e-30 {
			break
		}
		for p := range n {
			for q := p + 1; q < n; q++ {
				if a[p*n+q] == 0 {
					continue
				}
				theta := (a[q*n+q] - a[p*n+p]) / (2 * a[p*n+q])
				tt := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				cs := 1 / math.Sqrt(tt*tt+1)
				sn := tt * cs
				for k := range n { // A ← Jᵀ A J
					akp, akq := a[k*n+p], a[k*n+q]
					a[k*n+p], a[k*n+q] = cs*akp-sn*akq, sn*akp+cs*akq
				}
				for k := range n {
					apk, aqk := a[p*n+k], a[q*n+k]
					a[p*n+k], a[q*n+k] = cs*apk-sn*aqk, sn*apk+cs*aqk
				}
			}
		}
	}
	ev := make([]float64, n)
	for i := range n {
		ev[i] = a[i*n+i]
	}
	sort.Float64s(ev)
	return ev
}

func spd(r *rand.Rand, n int, spread float64) []float64 {
	enc := make([]float32, 3*n*n)
	for i := range enc {
		enc[i] = float32(r.NormFloat64() * math.Pow(spread, float64(i%n)/float64(n)))
	}
	return refMoment(enc, n, 1)
}

func TestEigenvaluesMatchJacobi(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, 3, 10, 33} {
		c := spd(r, n, 100)
		got, want := eigenvalues(c, n), jacobi(c, n)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-10*want[n-1] {
				t.Fatalf("n=%d: eigenvalue %d = %v, Jacobi %v", n, i, got[i], want[i])
			}
		}
		lo, hi := extremeEigenvalues(c, n)
		if lo != got[0] || hi != got[n-1] {
			t.Errorf("n=%d: extremes %v %v, want %v %v", n, lo, hi, got[0], got[n-1])
		}
	}
	// indefinite and singular matrices too
	c := []float64{0, 1, 0, 1, 0, 0, 0, 0, 0}
	if got := eigenvalues(c, 3); math.Abs(got[0]+1) > 1e-14 || math.Abs(got[1]) > 1e-14 || math.Abs(got[2]-1) > 1e-14 {
		t.Errorf("eigenvalues of a swap = %v, want -1 0 1", got)
	}
}

func TestFactorAndMulInverse(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	n := 24
	c := spd(r, n, 30)
	cv, err := Factor(c, n)
	if err != nil {
		t.Fatal(err)
	}
	if cv.Ridge != 0 {
		t.Errorf("well-conditioned C (cond %g) got a ridge", cv.Condition)
	}
	ev := jacobi(c, n)
	if math.Abs(cv.Condition-ev[n-1]/ev[0]) > 1e-8*cv.Condition {
		t.Errorf("condition %v, Jacobi gives %v", cv.Condition, ev[n-1]/ev[0])
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	x := cv.MulInverse(v)
	for i := range n { // C x = v
		s := 0.0
		for j := range n {
			s += c[i*n+j] * x[j]
		}
		if math.Abs(s-v[i]) > 1e-10*(1+math.Abs(v[i])) {
			t.Fatalf("(C·C⁻¹v)[%d] = %v, want %v", i, s, v[i])
		}
	}
	inv := cv.Inverse()
	for i := range n { // C · C⁻¹ = I
		for j := range n {
			s := 0.0
			for k := range n {
				s += c[i*n+k] * inv[k*n+j]
			}
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(s-want) > 1e-10 {
				t.Fatalf("(C·C⁻¹)[%d,%d] = %v", i, j, s)
			}
		}
	}
	if cv.MulInverse(v[:3]) != nil {
		t.Error("MulInverse of a wrong-length vector is not nil")
	}
}

func TestRidgeWhenIllConditioned(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	n := 20
	// fewer tokens than the width: rank 5, singular
	enc := randEnc(r, 5, n)
	c := refMoment(enc, n, 1)
	cv, err := Factor(c, n)
	if err != nil {
		t.Fatal(err)
	}
	trace := 0.0
	for i := range n {
		trace += c[i*n+i]
	}
	if want := RidgeEpsilon * trace / float64(n); cv.Ridge != want {
		t.Errorf("ridge %v, want ε·trace/D = %v", cv.Ridge, want)
	}
	if cv.Condition <= MaxCondition || cv.FactoredCondition() > float64(n)/RidgeEpsilon+1 {
		t.Errorf("condition %g before, %g after the ridge", cv.Condition, cv.FactoredCondition())
	}
	v := make([]float64, n)
	v[0] = 1
	x := cv.MulInverse(v)
	for i := range n { // (C + λI) x = v
		s := cv.Ridge * x[i]
		for j := range n {
			s += c[i*n+j] * x[j]
		}
		if math.Abs(s-v[i]) > 1e-8 {
			t.Fatalf("((C+λI) x)[%d] = %v, want %v", i, s, v[i])
		}
	}
	for _, bad := range [][]float64{make([]float64, 4), {1, 2, 3, 4}, {1, math.NaN(), math.NaN(), 1}} {
		if _, err := Factor(bad, 2); err == nil {
			t.Errorf("Factor(%v): no error", bad)
		}
	}
	if _, err := Factor([]float64{1, 2, 3}, 2); err == nil {
		t.Error("wrong size: no error")
	}
}
