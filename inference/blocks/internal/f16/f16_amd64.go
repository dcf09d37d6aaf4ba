//go:build amd64 && !purego

package f16

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// Set once at start-up (tests may switch them off). The AVX-512 path runs
// only where F16C is there too, for the tails.
var (
	hasF16C   = x86.HasF16C()
	hasAVX512 = x86.HasAVX512() && hasF16C
)

// cvtF16C converts n (a multiple of 8) values with YMM registers; in
// f16_amd64.s.
//
//go:noescape
func cvtF16C(dst *float32, src *uint16, n int)

// cvtAVX512 converts n (a multiple of 16) values with ZMM registers; in
// f16_amd64.s.
//
//go:noescape
func cvtAVX512(dst *float32, src *uint16, n int)

// vector converts the longest multiple-of-8 prefix when F16C is there
// (the multiple-of-16 part of it with AVX-512 when that is there too) and
// returns its length.
func vector(dst []float32, src []uint16) int {
	n := len(src) &^ 7
	if !hasF16C || n == 0 {
		return 0
	}
	_ = dst[n-1]
	done := 0
	if hasAVX512 {
		if done = n &^ 15; done > 0 {
			cvtAVX512(&dst[0], &src[0], done)
		}
	}
	if done < n {
		cvtF16C(&dst[done], &src[done], n-done)
	}
	return n
}
