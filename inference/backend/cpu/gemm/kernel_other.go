//go:build !amd64

package gemm

// bestKernel is the micro-kernel used by a zero Engine; set once at init.
var bestKernel = goKernel
