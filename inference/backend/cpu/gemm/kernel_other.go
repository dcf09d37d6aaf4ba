//go:build !amd64

package gemm

// bestKernel is the micro-kernel used by a zero Engine; set once at init.
var bestKernel = goKernel

// extraKernels are the kernels this CPU can run besides the best one: none.
func extraKernels() []kernel { return nil }
