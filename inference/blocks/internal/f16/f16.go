// Package f16 converts IEEE binary16 values to float32 in bulk, with the
// F16C instruction VCVTPH2PS (eight values an instruction) on amd64 CPUs
// that have it, and with weights.HalfToFloat32s elsewhere and for the
// tails. Both are exact; the one difference is that F16C sets the quiet
// bit of a signalling NaN (payload otherwise kept), which no weight
// holds in practice.
package f16

import "github.com/perfusion-studio/perfusion/inference/weights"

// ToFloat32s converts src into dst[:len(src)]; dst must be at least as
// long as src.
func ToFloat32s(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	n := vector(dst, src)
	weights.HalfToFloat32s(dst[n:], src[n:])
}

// Vector reports whether ToFloat32s uses the F16C instructions.
func Vector() bool { return hasF16C }
