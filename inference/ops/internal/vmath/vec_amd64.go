package vmath

// hasAVX2 is set once at init from CPUID and never changed.
var hasAVX2 = detectAVX2FMA()

// detectAVX2FMA reports whether the CPU and OS support AVX2 and FMA3.
func detectAVX2FMA() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&6 != 6 { // OS saves XMM and YMM state
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0 // AVX2
}

// The kernels below are in vec_amd64.s; n must be a multiple of 8.

//go:noescape
func expAVX2(dst, src *float32, n int)

//go:noescape
func sigmoidAVX2(dst, src *float32, n int, negAlpha float32)

//go:noescape
func phiAVX2(dst, src *float32, n int)

func cpuid(eax, ecx uint32) (a, b, c, d uint32)

func xgetbv() (eax, edx uint32)

func expVec(dst, x []float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	_ = dst[n-1]
	expAVX2(&dst[0], &x[0], n)
	return n
}

func sigmoidVec(dst, x []float32, alpha float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	_ = dst[n-1]
	sigmoidAVX2(&dst[0], &x[0], n, -alpha)
	return n
}

func phiVec(dst, x []float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	_ = dst[n-1]
	phiAVX2(&dst[0], &x[0], n)
	return n
}
