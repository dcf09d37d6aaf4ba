package rng

import "math"

// The float32 log, sin and cos of torch's scalar normal kernel come from
// glibc's libm (x86-64, FMA variant selected on AVX2 machines), whose
// algorithms are those of ARM's optimized-routines (MIT licence,
// https://github.com/ARM-software/optimized-routines, math/logf.c and
// math/sinf.c, math/cosf.c): float64 evaluation of a short polynomial after a
// table or quadrant reduction, rounded once to float32. They are within 0.82
// ulp, not correctly rounded, so bit parity with torch needs the same
// coefficients and the same fused multiply-adds; the constants below are
// those of the reference.

// logf table: 16 subintervals of [0x3f330000, 2*0x3f330000] with 1/c and
// log(c) for a c near each centre.
var logfTab = [16]struct{ invc, logc float64 }{
	{0x1.661ec79f8f3bep+0, -0x1.57bf7808caadep-2},
	{0x1.571ed4aaf883dp+0, -0x1.2bef0a7c06ddbp-2},
	{0x1.49539f0f010bp+0, -0x1.01eae7f513a67p-2},
	{0x1.3c995b0b80385p+0, -0x1.b31d8a68224e9p-3},
	{0x1.30d190c8864a5p+0, -0x1.6574f0ac07758p-3},
	{0x1.25e227b0b8eap+0, -0x1.1aa2bc79c81p-3},
	{0x1.1bb4a4a1a343fp+0, -0x1.a4e76ce8c0e5ep-4},
	{0x1.12358f08ae5bap+0, -0x1.1973c5a611cccp-4},
	{0x1.0953f419900a7p+0, -0x1.252f438e10c1ep-5},
	{0x1p+0, 0x0p+0},
	{0x1.e608cfd9a47acp-1, 0x1.aa5aa5df25984p-5},
	{0x1.ca4b31f026aap-1, 0x1.c5e53aa362eb4p-4},
	{0x1.b2036576afce6p-1, 0x1.526e57720db08p-3},
	{0x1.9c2d163a1aa2dp-1, 0x1.bc2860d22477p-3},
	{0x1.886e6037841edp-1, 0x1.1058bc8a07ee1p-2},
	{0x1.767dcf5534862p-1, 0x1.4043057b6ee09p-2},
}

const (
	logfLn2 = 0x1.62e42fefa39efp-1
	logfA0  = -0x1.00ea348b88334p-2
	logfA1  = 0x1.5575b0be00b6ap-2
	logfA2  = -0x1.ffffef20a4123p-2
	logfOff = 0x3f330000
)

// logf is glibc's float32 log for positive normal x (the only inputs the
// Box–Muller kernel gives it: 1-u in [2^-24, 1]); other inputs fall back to
// a correctly rounded log.
func logf(x float32) float32 {
	ix := math.Float32bits(x)
	if ix == 0x3f800000 {
		return 0
	}
	if ix-0x00800000 >= 0x7f800000-0x00800000 { // zero, subnormal, negative, inf, nan
		return float32(math.Log(float64(x)))
	}
	// x = 2^k z with z in [off, 2 off); table index from z's top mantissa bits.
	tmp := ix - logfOff
	i := (tmp >> 19) % 16
	k := int32(tmp) >> 23
	z := float64(math.Float32frombits(ix - tmp&(0x1ff<<23)))
	t := logfTab[i]
	// log(x) = log1p(z/c - 1) + log(c) + k ln2.
	r := math.FMA(z, t.invc, -1)
	y0 := math.FMA(float64(k), logfLn2, t.logc)
	r2 := r * r
	y := math.FMA(logfA1, r, logfA2)
	y = math.FMA(logfA0, r2, y)
	y = math.FMA(y, r2, y0+r)
	return float32(y)
}

// sincos polynomial coefficients: cos(x) ~ c0 + c1 x^2 + ... + c4 x^8,
// sin(x) ~ x + s1 x^3 + s2 x^5 + s3 x^7 on [-pi/4, pi/4].
const (
	scHpiInv = 0x1.45F306DC9C883p+23 // 2/pi * 2^24
	scHpi    = 0x1.921FB54442D18p0   // pi/2
	scC0     = 0x1p0
	scC1     = -0x1.ffffffd0c621cp-2
	scC2     = 0x1.55553e1068f19p-5
	scC3     = -0x1.6c087e89a359dp-10
	scC4     = 0x1.99343027bf8c3p-16
	scS1     = -0x1.555545995a603p-3
	scS2     = 0x1.1107605230bc4p-7
	scS3     = -0x1.994eb3774cf24p-13
)

// sinf and cosf are glibc's float32 sine and cosine for |x| < 120 (the
// kernel gives them theta in [0, 2 pi)); larger or special inputs fall back
// to a correctly rounded evaluation.
func sinf(x float32) float32 { return sincosf(x, false) }
func cosf(x float32) float32 { return sincosf(x, true) }

func sincosf(y float32, wantCos bool) float32 {
	top := math.Float32bits(y) >> 20 & 0x7ff
	x := float64(y)
	switch {
	case top < 0x3f4: // |y| < 0.75: no reduction
		if top < 0x398 { // |y| < 2^-12
			if wantCos {
				return 1
			}
			return y
		}
		return sincosPoly(x, x*x, wantCos, false)
	case top < 0x42f: // |y| < 120: one-step reduction by multiples of pi/2
		n := (int32(x*scHpiInv) + 0x800000) >> 24
		x = math.FMA(-float64(n), scHpi, x)
		q := n & 3
		if q == 1 || q == 2 {
			x = -x
		}
		// Odd quadrants swap sine and cosine; quadrants 2 and 3 negate the
		// cosine polynomial.
		return sincosPoly(x, x*x, wantCos != (n&1 == 1), n&2 != 0)
	default:
		if wantCos {
			return float32(math.Cos(x))
		}
		return float32(math.Sin(x))
	}
}

// sincosPoly evaluates the cosine polynomial (negated if neg) or the sine
// polynomial at x, with x2 = x*x, in the reference's order.
func sincosPoly(x, x2 float64, cos, neg bool) float32 {
	if cos {
		c0, c1, c2, c3, c4 := scC0, scC1, scC2, scC3, scC4
		if neg {
			c0, c1, c2, c3, c4 = -c0, -c1, -c2, -c3, -c4
		}
		x4 := x2 * x2
		hi := math.FMA(x2, c4, c3)
		lo := math.FMA(x2, c1, c0)
		x6 := x4 * x2
		c := math.FMA(x4, c2, lo)
		return float32(math.FMA(x6, hi, c))
	}
	x3 := x * x2
	s23 := math.FMA(x2, scS3, scS2)
	x7 := x3 * x2
	s := math.FMA(x3, scS1, x)
	return float32(math.FMA(x7, s23, s))
}
