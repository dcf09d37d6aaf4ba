// Package f16 converts IEEE binary16 values to float32 in bulk, with the
// instruction VCVTPH2PS on amd64 CPUs that have it (on ZMM registers, 16
// values an instruction, where the CPU has AVX-512; on YMM registers, eight
// values, with F16C alone), and with weights.HalfToFloat32s elsewhere and
// for the tails. All are exact; the one difference is that VCVTPH2PS sets the
// quiet bit of a signalling NaN (payload otherwise kept), which no weight
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

// Kernel names the conversion ToFloat32s runs: "avx512", "f16c" or "go".
func Kernel() string {
	switch {
	case hasF16C && hasAVX512:
		return "avx512"
	case hasF16C:
		return "f16c"
	}
	return "go"
}
