//go:build amd64 && !purego

package f16

// hasF16C is set once at start-up (tests may switch it off).
var hasF16C = detect()

// detect reports whether the CPU has F16C and AVX and the OS saves the
// YMM registers.
func detect() bool {
	_, _, ecx, _ := cpuid(1, 0)
	const f16c, osxsave, avx = 1 << 29, 1 << 27, 1 << 28
	if ecx&(f16c|osxsave|avx) != f16c|osxsave|avx {
		return false
	}
	xcr0, _ := xgetbv()
	return xcr0&6 == 6
}

// cvtF16C converts n (a multiple of 8) values; in f16_amd64.s.
//
//go:noescape
func cvtF16C(dst *float32, src *uint16, n int)

func cpuid(eax, ecx uint32) (a, b, c, d uint32)

func xgetbv() (eax, edx uint32)

// vector converts the longest multiple-of-8 prefix when F16C is there and
// returns its length.
func vector(dst []float32, src []uint16) int {
	n := len(src) &^ 7
	if !hasF16C || n == 0 {
		return 0
	}
	_ = dst[n-1]
	cvtF16C(&dst[0], &src[0], n)
	return n
}
