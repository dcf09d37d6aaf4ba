//go:build !amd64 || purego

package f16

var hasF16C = false // a var so that tests can toggle it on every platform

func vector(dst []float32, src []uint16) int { return 0 }
