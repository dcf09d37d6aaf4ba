//go:build !amd64 || purego

package f16

// vars so that tests can toggle them on every platform
var (
	hasF16C   = false
	hasAVX512 = false
)

func vector(dst []float32, src []uint16) int { return 0 }
