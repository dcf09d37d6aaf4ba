package covariance

import (
	"fmt"
	"math"
)

// Ridge policy. C from a varied corpus of thousands of captions is well
// conditioned (the SD1.5 C of the reference implementations has condition
// number ≈ 3.9·10³, PERFUSION.md §4), and no reference regularises it. A
// small corpus, near-duplicate tokens or a degenerate encoder can make it
// ill-conditioned or singular; then λ = RidgeEpsilon·trace(C)/D (a 10⁻⁴
// fraction of the mean eigenvalue) is added to the diagonal before the
// factorisation, which bounds the condition number of C + λI by
// (λmax + λ)/λ ≤ D/RidgeEpsilon + 1.
const (
	// MaxCondition is the largest condition number λmax/λmin of C that is
	// factored as it is. 10⁶ keeps C⁻¹v accurate to ~10⁻¹⁰ in float64 and
	// C⁻¹ usable in float32, 250 times the conditioning of SD1.5's C.
	MaxCondition = 1e6
	// RidgeEpsilon is ε in the ridge λ = ε·trace(C)/D.
	RidgeEpsilon = 1e-4
)

// Covariance is the uncentered second moment C of the text encodings of a
// caption corpus (PERFUSION.md §4), with its Cholesky factor: the metric
// of Perfusion's similarity s = eᵀC⁻¹i* / i*ᵀC⁻¹i*.
type Covariance struct {
	D        int       // width of the encodings
	Captions int       // captions it was estimated from
	Tokens   int64     // token encodings summed (77 per caption)
	Key      string    // what it was computed from (see Key); concept files record it
	C        []float64 // C [D, D], as estimated (without the ridge)

	MinEigen, MaxEigen float64 // extreme eigenvalues of C
	Condition          float64 // MaxEigen/MinEigen, +Inf when C is singular
	Ridge              float64 // λ added to the diagonal before factoring (0: none)

	l []float64 // lower Cholesky factor of C + Ridge·I [D, D]
}

// Factor checks c [d, d] (symmetric), measures its condition number, adds
// the ridge when it exceeds MaxCondition (or C is not positive definite),
// and computes the Cholesky factor in float64.
func Factor(c []float64, d int) (*Covariance, error) {
	return FactorWithLimit(c, d, MaxCondition)
}

// FactorWithLimit is Factor with another condition-number limit for the
// ridge; math.Inf(1) adds it only when C is not positive definite, as the
// reference implementations' plain inverse (for comparing with them).
func FactorWithLimit(c []float64, d int, maxCondition float64) (*Covariance, error) {
	if d <= 0 || len(c) != d*d {
		return nil, fmt.Errorf("covariance: %d values for a %d×%d matrix", len(c), d, d)
	}
	trace := 0.0
	for i := range d {
		for j := range d {
			v := c[i*d+j]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("covariance: C[%d,%d] is %v", i, j, v)
			}
			if v != c[j*d+i] {
				return nil, fmt.Errorf("covariance: C is not symmetric at [%d,%d]", i, j)
			}
		}
		trace += c[i*d+i]
	}
	if !(trace > 0) {
		return nil, fmt.Errorf("covariance: C has trace %g: the encodings are all zero", trace)
	}
	cv := &Covariance{D: d, C: append([]float64(nil), c...)}
	cv.MinEigen, cv.MaxEigen = extremeEigenvalues(c, d)
	cv.Condition = math.Inf(1)
	if cv.MinEigen > 0 {
		cv.Condition = cv.MaxEigen / cv.MinEigen
	}
	if cv.Condition <= maxCondition {
		if l, err := cholesky(c, d, 0); err == nil {
			cv.l = l
			return cv, nil
		}
	}
	cv.Ridge = RidgeEpsilon * trace / float64(d)
	l, err := cholesky(c, d, cv.Ridge)
	if err != nil {
		return nil, fmt.Errorf("covariance: C + %g·I: %w", cv.Ridge, err)
	}
	cv.l = l
	return cv, nil
}

// FromAccumulator factors the matrix of a (see Factor) and records how
// many captions and tokens it came from.
func FromAccumulator(a *Accumulator) (*Covariance, error) {
	c, err := a.Matrix()
	if err != nil {
		return nil, err
	}
	cv, err := Factor(c, a.Width())
	if err != nil {
		return nil, err
	}
	cv.Captions, cv.Tokens = a.Captions(), a.Tokens()
	return cv, nil
}

// FactoredCondition is the condition number of the matrix actually
// factored, C + Ridge·I.
func (cv *Covariance) FactoredCondition() float64 {
	if cv.MinEigen+cv.Ridge <= 0 {
		return math.Inf(1)
	}
	return (cv.MaxEigen + cv.Ridge) / (cv.MinEigen + cv.Ridge)
}

// cholesky returns the lower factor L of c + ridge·I = L Lᵀ.
func cholesky(c []float64, d int, ridge float64) ([]float64, error) {
	l := make([]float64, d*d)
	for j := range d {
		lj := l[j*d : j*d+j]
		s := c[j*d+j] + ridge - dot(lj, lj)
		if !(s > 0) {
			return nil, fmt.Errorf("not positive definite (pivot %d is %g)", j, s)
		}
		djj := math.Sqrt(s)
		l[j*d+j] = djj
		for i := j + 1; i < d; i++ {
			l[i*d+j] = (c[i*d+j] - dot(l[i*d:i*d+j], lj)) / djj
		}
	}
	return l, nil
}

// MulInverse returns C⁻¹v (with the ridge, if any) by two triangular
// solves in float64. v must have D values; otherwise it returns nil.
func (cv *Covariance) MulInverse(v []float64) []float64 {
	d := cv.D
	if len(v) != d || cv.l == nil {
		return nil
	}
	l := cv.l
	y := make([]float64, d)
	for i := range d { // L y = v
		y[i] = (v[i] - dot(l[i*d:i*d+i], y[:i])) / l[i*d+i]
	}
	for i := d - 1; i >= 0; i-- { // Lᵀ x = y, in place
		s := y[i]
		for k := i + 1; k < d; k++ {
			s -= l[k*d+i] * y[k]
		}
		y[i] = s / l[i*d+i]
	}
	return y
}

// Inverse returns C⁻¹ [D, D] in float64 (symmetric).
func (cv *Covariance) Inverse() []float64 {
	d := cv.D
	inv := make([]float64, d*d)
	e := make([]float64, d)
	for j := range d {
		e[j] = 1
		col := cv.MulInverse(e)
		e[j] = 0
		for i := range d {
			inv[i*d+j] = col[i]
		}
	}
	for i := range d { // symmetrise the rounding
		for j := i + 1; j < d; j++ {
			m := (inv[i*d+j] + inv[j*d+i]) / 2
			inv[i*d+j], inv[j*d+i] = m, m
		}
	}
	return inv
}

// InverseFloat32 is Inverse rounded to float32, as the edit uses it.
func (cv *Covariance) InverseFloat32() []float32 {
	inv := cv.Inverse()
	out := make([]float32, len(inv))
	for i, v := range inv {
		out[i] = float32(v)
	}
	return out
}

// Summary describes C in one line for logs and the CLI.
func (cv *Covariance) Summary() string {
	r := "no ridge"
	if cv.Ridge > 0 {
		r = fmt.Sprintf("ridge %.3g (condition after %.3g)", cv.Ridge, cv.FactoredCondition())
	}
	return fmt.Sprintf("C %d×%d from %d captions (%d tokens): eigenvalues %.4g to %.4g, condition number %.4g, %s",
		cv.D, cv.D, cv.Captions, cv.Tokens, cv.MinEigen, cv.MaxEigen, cv.Condition, r)
}
