//go:build !amd64 || purego

package attention

// pick returns the kernels for this machine: the Go set off amd64.
func pick() kernels { return goKernels }
