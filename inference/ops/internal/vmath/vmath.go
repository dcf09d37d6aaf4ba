// Package vmath computes exp, the logistic sigmoid, the standard normal
// CDF and the gradients of GELU and GEGLU over float32 slices for the
// elementwise operators (SiLU, GELU, GEGLU), eight lanes at a time with
// AVX2+FMA where the CPU has them, and with scalar float64 code otherwise
// and for the tails. The standard
// library's math.Erf costs ~30 ns an element, which made GELU as slow as
// the GEMM around it; the vector kernels take about 1-3 ns.
package vmath

import "math"

const (
	log2e  = 1.4426950408889634         // 1/ln 2
	ln2hi  = 6.93147180369123816490e-01 // ln 2, upper bits (k*ln2hi is exact)
	ln2lo  = 1.90821492927058770002e-10 // ln 2 - ln2hi
	round  = 6755399441055744.0         // 1.5*2^52: adding it rounds to an integer
	sqrt12 = 0.70710678118654752440     // 1/sqrt(2)

	invSqrt2Pi = 0.3989422804014327 // 1/sqrt(2 pi), the standard normal density at 0
)

// Exp returns e^x with a relative error below 1e-10 (it flushes results
// under 2^-1021 to zero).
//
// x = k*ln2 + r with |r| <= ln2/2, e^x = 2^k * e^r, and e^r is its Taylor
// polynomial to degree 9 (truncation error r^10/10! < 7e-12).
func Exp(x float64) float64 {
	switch {
	case x != x: // NaN
		return x
	case x < -708:
		return 0
	case x > 709.7:
		return math.Inf(1)
	}
	k := (x*log2e + round) - round
	r := x - k*ln2hi - k*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+
		r*(1.0/5040+r*(1.0/40320+r*(1.0/362880)))))))))
	if k > 1023 { // x in (709.08, 709.7]: 2^k overflows, split it
		return p * 2 * math.Float64frombits(uint64(int64(k)-1+1023)<<52)
	}
	return p * math.Float64frombits(uint64(int64(k)+1023)<<52)
}

// Sigmoid returns 1/(1+e^-x).
func Sigmoid(x float64) float64 {
	return 1 / (1 + Exp(-x))
}

// Phi returns the standard normal CDF, 0.5*erfc(-x/sqrt 2), with a
// relative error below 2e-7 everywhere, tails included.
//
// erfc(z) for z >= 0 is t*exp(-z^2 + P(t)), t = 1/(1+z/2), with the
// Chebyshev-fitted degree-9 polynomial P of Press et al., Numerical Recipes
// (2nd ed., section 6.2, fractional error < 1.2e-7).
func Phi(x float64) float64 {
	z := math.Abs(x) * sqrt12
	t := 1 / (1 + 0.5*z)
	p := -1.26551223 + t*(1.00002368+t*(0.37409196+t*(0.09678418+t*(-0.18628806+
		t*(0.27886807+t*(-1.13520398+t*(1.48851587+t*(-0.82215223+t*0.17087277))))))))
	h := 0.5 * t * Exp(p-z*z) // 0.5*erfc(|x|/sqrt 2)
	if x >= 0 {
		return 1 - h
	}
	return h
}

// Exps sets dst[i] = e^x[i] (float32; results below ~1e-38 are not
// exact). dst and x have equal length and may be the same slice.
func Exps(dst, x []float32) {
	for i := expVec(dst, x); i < len(x); i++ {
		dst[i] = float32(Exp(float64(max(x[i], -87))))
	}
}

// Sigmoids sets dst[i] = 1/(1+e^(-alpha*x[i])).
func Sigmoids(dst, x []float32, alpha float32) {
	for i := sigmoidVec(dst, x, alpha); i < len(x); i++ {
		dst[i] = float32(Sigmoid(float64(alpha) * float64(x[i])))
	}
}

// Phis sets dst[i] = Phi(x[i]), the standard normal CDF.
func Phis(dst, x []float32) {
	for i := phiVec(dst, x); i < len(x); i++ {
		dst[i] = float32(Phi(float64(x[i])))
	}
}

// GELUGrads sets dx[i] = dy[i]*GELU'(x[i]), GELU'(x) = Phi(x) + x*pdf(x);
// s is scratch. All slices have len(x).
func GELUGrads(dx, x, dy, s []float32) {
	for i, v := range x {
		s[i] = -0.5 * v * v
	}
	Exps(s, s) // sqrt(2 pi) * pdf
	for i, v := range x {
		dx[i] = v * s[i] * invSqrt2Pi
	}
	Phis(s, x)
	for i := range dx {
		dx[i] = (dx[i] + s[i]) * dy[i]
	}
}

// GEGLUGrads sets, for y = a*GELU(g) and its gradient dy, da[i] =
// dy[i]*GELU(g[i]) and dg[i] = dy[i]*a[i]*GELU'(g[i]), where GELU(x) =
// x*Phi(x) and GELU'(x) = Phi(x) + x*pdf(x). All slices have len(g).
func GEGLUGrads(da, dg, a, g, dy []float32) {
	for i := gegluGradVec(da, dg, a, g, dy); i < len(g); i++ {
		v := float64(g[i])
		phi := Phi(v)
		da[i] = float32(float64(dy[i]) * v * phi)
		dg[i] = float32(float64(dy[i]) * float64(a[i]) * (phi + v*Exp(-0.5*v*v)*invSqrt2Pi))
	}
}
