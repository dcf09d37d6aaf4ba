//go:build amd64 && !purego

package f16

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// hasF16C is set once at start-up (tests may switch it off).
var hasF16C = x86.HasF16C()

// cvtF16C converts n (a multiple of 8) values; in f16_amd64.s.
//
//go:noescape
func cvtF16C(dst *float32, src *uint16, n int)

// vector converts the longest multiple-of-8 prefix when F16C is there and
// returns its length.
func vector(dst []float32, src []uint16) int {
	n := len(src) &^ 7
	if !hasF16C || n == 0 {
		return 0
	}
	_ = dst[n-1]
	cvtF16C(&dst[0], &src[0], n)
	return n
}
