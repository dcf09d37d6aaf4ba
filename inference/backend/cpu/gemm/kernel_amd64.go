package gemm

// bestKernel is the micro-kernel used by a zero Engine; set once at init
// from CPUID and never changed.
var bestKernel = pickKernel()

// avx2Kernel is a 6×16 tile: 12 YMM accumulators, two YMM loads of B and
// six broadcasts of A per k step. kc*16*4 bytes of B (16 KiB) stay in L1.
var avx2Kernel = kernel{name: "avx2-6x16", mr: 6, nr: 16, mc: 144, kc: 256, nc: 4096, fn: kern6x16}

func pickKernel() kernel {
	if hasAVX2FMA() {
		return avx2Kernel
	}
	return goKernel
}

// hasAVX2FMA reports whether the CPU and OS support AVX2 and FMA3.
func hasAVX2FMA() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	// The OS must save XMM and YMM state (XCR0 bits 1 and 2).
	if xcr0, _ := xgetbv(); xcr0&6 != 6 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	const avx2 = 1 << 5
	return ebx7&avx2 != 0
}

func kern6x16(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[6*kc-1]
	_ = b[16*kc-1]
	_ = c[5*ldc+15]
	l := 0
	if loadC {
		l = 1
	}
	kern6x16AVX2(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, l)
}

// kern6x16AVX2 is kernelFunc for a 6×16 tile, in kernel_amd64.s.
//
//go:noescape
func kern6x16AVX2(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC int)

// cpuid executes CPUID with EAX=eax and ECX=ecx.
func cpuid(eax, ecx uint32) (a, b, c, d uint32)

// xgetbv reads XCR0.
func xgetbv() (eax, edx uint32)
