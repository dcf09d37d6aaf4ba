package attention

import "math"

// Constants of the exponential. exp(x) = 2^n · e^r with n = round(x/ln2)
// and r = x - n·ln2 (Cody–Waite: ln2 split so that n·ln2Hi is exact), so
// |r| <= ln2/2; e^r is a degree-6 polynomial fitted for relative error
// (max 0.06 ulp on the interval). 2^n is applied as two factors so that
// results in the subnormal range are right too.
const (
	expLo    = -104.0              // exp(expLo) rounds to 0 in float32
	expHi    = 88.8                // exp(expHi) overflows to +Inf
	log2e    = 1.44269504088896341 // 1/ln 2
	ln2Hi    = 0.693359375         // 355/512: n·ln2Hi is exact for |n| < 2^15
	ln2Lo    = -2.12194440e-4      // ln 2 - ln2Hi
	expC2    = 0.49999988
	expC3    = 0.16666518
	expC4    = 0.041669533
	expC5    = 0.0083689215
	expC6    = 0.0013751389
	expBias  = 127
	expShift = 23
)

// Constants of the base-2 exponential of the softmax, whose scores are
// pre-scaled by log2(e): 2^x = 2^n · 2^r with n = round(x) and r = x - n
// exact, |r| <= 1/2, 2^r a degree-6 polynomial (max 0.04 ulp). Inputs at or
// below -126 give 0 (so do -Inf and NaN), which keeps 2^n a normal number
// applied in one step.
const (
	exp2Lo = -126.0
	exp2C1 = 0.6931472
	exp2C2 = 0.24022648
	exp2C3 = 0.05550329
	exp2C4 = 0.009618374
	exp2C5 = 0.0013399848
	exp2C6 = 0.00015370703
)

// Exp sets dst[i] = e^src[i] for i < len(src) (dst must be at least as
// long). It is accurate to about 1 ulp, gives 0 for inputs below about
// -103.3 (and -Inf), +Inf above 88.72, and NaN for NaN.
func Exp(dst, src []float32) {
	dst = dst[:len(src)]
	pick().exp(dst, src)
}

// expf is the scalar exponential of the Go kernels; the assembly computes
// the same formula eight lanes at a time.
func expf(x float32) float32 {
	if x != x {
		return x
	}
	x = min(max(x, expLo), expHi)
	n := float32(math.RoundToEven(float64(x * log2e)))
	r := x - n*ln2Hi
	r -= n * ln2Lo
	p := float32(expC6)
	p = p*r + expC5
	p = p*r + expC4
	p = p*r + expC3
	p = p*r + expC2
	p = p*r + 1
	p = p*r + 1
	ni := int32(n)
	n1 := ni >> 1
	n2 := ni - n1
	return p * math.Float32frombits(uint32(n1+expBias)<<expShift) * math.Float32frombits(uint32(n2+expBias)<<expShift)
}

// exp2f is the scalar base-2 exponential of the Go kernels, for x < 128.
func exp2f(x float32) float32 {
	if !(x > exp2Lo) {
		return 0
	}
	n := float32(math.RoundToEven(float64(x)))
	r := x - n
	p := float32(exp2C6)
	p = p*r + exp2C5
	p = p*r + exp2C4
	p = p*r + exp2C3
	p = p*r + exp2C2
	p = p*r + exp2C1
	p = p*r + 1
	return math.Float32frombits(math.Float32bits(p) + uint32(int32(n))<<expShift)
}

func goExp2(dst, src []float32) {
	for i, x := range src {
		dst[i] = exp2f(x)
	}
}

func goExp(dst, src []float32) {
	for i, x := range src {
		dst[i] = expf(x)
	}
}
