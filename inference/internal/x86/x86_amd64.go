package x86

// Features read once at start-up; they never change afterwards.
var (
	avx2fma = detectAVX2FMA()
	f16c    = detectF16C()
	avx512  = detectAVX512()
)

// HasAVX2FMA reports whether the CPU and OS support AVX2 and FMA3.
func HasAVX2FMA() bool { return avx2fma }

// HasAVX512 reports whether the CPU and OS support AVX-512 Foundation with
// FMA on 512-bit registers (AVX512F, plus AVX2/FMA3 for the tails) and the
// OS saves the ZMM state (XCR0 bits 5-7).
func HasAVX512() bool { return avx512 }

// HasF16C reports whether the CPU and OS support AVX and F16C (VCVTPH2PS).
func HasF16C() bool { return f16c }

const (
	ecx1FMA     = 1 << 12
	ecx1OSXSAVE = 1 << 27
	ecx1AVX     = 1 << 28
	ecx1F16C    = 1 << 29
	ebx7AVX2    = 1 << 5
	ebx7AVX512F = 1 << 16
	// xcr0ZMM is the opmask, upper-ZMM0-15 and ZMM16-31 state bits.
	xcr0ZMM = 7 << 5
)

// osSavesYMM reports whether CPUID leaf 1 has AVX and OSXSAVE and the OS
// saves XMM and YMM state (XCR0 bits 1 and 2).
func osSavesYMM(ecx1 uint32) bool {
	if ecx1&(ecx1OSXSAVE|ecx1AVX) != ecx1OSXSAVE|ecx1AVX {
		return false
	}
	xcr0, _ := xgetbv()
	return xcr0&6 == 6
}

func detectAVX2FMA() bool {
	if maxID, _, _, _ := cpuid(0, 0); maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	if ecx1&ecx1FMA == 0 || !osSavesYMM(ecx1) {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&ebx7AVX2 != 0
}

func detectAVX512() bool {
	if !detectAVX2FMA() {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	if ebx7&ebx7AVX512F == 0 {
		return false
	}
	xcr0, _ := xgetbv()
	return xcr0&xcr0ZMM == xcr0ZMM
}

func detectF16C() bool {
	_, _, ecx1, _ := cpuid(1, 0)
	return ecx1&ecx1F16C != 0 && osSavesYMM(ecx1)
}

// cpuid executes CPUID with EAX=eax and ECX=ecx; in x86_amd64.s.
func cpuid(eax, ecx uint32) (a, b, c, d uint32)

// xgetbv reads XCR0; in x86_amd64.s.
func xgetbv() (eax, edx uint32)
