//go:build !amd64 || purego

package attention

// pick returns the kernels for this machine: the Go set off amd64.
func pick() kernels { return goKernels }

// available lists the kernel sets this machine runs: the Go set.
func available() []kernels { return []kernels{goKernels} }
