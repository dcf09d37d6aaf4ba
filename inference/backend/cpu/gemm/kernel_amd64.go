package gemm

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// bestKernel is the micro-kernel used by a zero Engine; set once at init
// from CPUID and never changed.
var bestKernel = pickKernel()

// avx2Kernel is a 6×16 tile: 12 YMM accumulators, two YMM loads of B and
// six broadcasts of A per k step. kc*16*4 bytes of B (16 KiB) stay in L1.
var avx2Kernel = kernel{name: "avx2-6x16", mr: 6, nr: 16, mc: 144, kc: 256, nc: 4096, fn: kern6x16}

// avx512Kernel is a 14×32 tile: 28 ZMM accumulators, two ZMM loads of B
// and fourteen broadcasts of A per k step. kc*32*4 bytes of B (32 KiB) stay
// in L1; the [mc, kc] block of A (168 KiB) in L2.
var avx512Kernel = kernel{name: "avx512-14x32", mr: 14, nr: 32, mc: 168, kc: 256, nc: 4096, fn: kern14x32}

func pickKernel() kernel {
	if x86.HasAVX512() {
		return avx512Kernel
	}
	if x86.HasAVX2FMA() {
		return avx2Kernel
	}
	return goKernel
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

func kern14x32(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[14*kc-1]
	_ = b[32*kc-1]
	_ = c[13*ldc+31]
	l := 0
	if loadC {
		l = 1
	}
	kern14x32AVX512(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, l)
}

// kern14x32AVX512 is kernelFunc for a 14×32 tile, in kernel_avx512_amd64.s.
//
//go:noescape
func kern14x32AVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC int)

// extraKernels are the assembly kernels this CPU can run besides the best
// one, for tests.
func extraKernels() []kernel {
	var ks []kernel
	if x86.HasAVX512() {
		ks = append(ks, avx2Kernel)
	}
	return ks
}
