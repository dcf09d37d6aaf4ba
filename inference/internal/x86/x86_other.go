//go:build !amd64

package x86

// HasAVX2FMA is false off amd64.
func HasAVX2FMA() bool { return false }

// HasF16C is false off amd64.
func HasF16C() bool { return false }

// HasAVX512 is false off amd64.
func HasAVX512() bool { return false }
