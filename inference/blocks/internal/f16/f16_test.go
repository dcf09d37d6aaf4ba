package f16

import (
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// signallingNaN reports whether h is a binary16 NaN with the quiet bit clear.
func signallingNaN(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 && h&0x200 == 0 }

// TestAllValues converts every binary16 value, at every offset of the
// vector loop and tail, and compares the bits with weights.FromHalf.
func TestAllValues(t *testing.T) {
	t.Logf("F16C: %v", Vector())
	src := make([]uint16, 1<<16+13)
	for i := range src {
		src[i] = uint16(i * 40503) // a permutation of all values, then 13 more
	}
	for _, off := range []int{0, 1, 5, 8} {
		s := src[off:]
		dst := make([]float32, len(s)+3)
		for i := range dst {
			dst[i] = -7
		}
		ToFloat32s(dst, s)
		for i, h := range s {
			got, want := math.Float32bits(dst[i]), math.Float32bits(safetensors.HalfToFloat32(h))
			if signallingNaN(h) {
				if !math.IsNaN(float64(dst[i])) || got&^(1<<22) != want {
					t.Fatalf("offset %d: %#04x: got %#08x, want NaN %#08x (quiet bit aside)", off, h, got, want)
				}
				continue
			}
			if got != want {
				t.Fatalf("offset %d: %#04x: got %#08x, want %#08x", off, h, got, want)
			}
		}
		for _, v := range dst[len(s):] {
			if v != -7 {
				t.Fatalf("offset %d: wrote past len(src)", off)
			}
		}
	}
}

// TestScalar runs the same check with the vector path off.
func TestScalar(t *testing.T) {
	defer func(v bool) { hasF16C = v }(hasF16C)
	hasF16C = false
	TestAllValues(t)
}

func BenchmarkToFloat32s(b *testing.B) {
	for _, n := range []int{1 << 12, 1 << 22} {
		src := make([]uint16, n)
		for i := range src {
			src[i] = uint16(i*40503) & 0xbbff // finite values
		}
		dst := make([]float32, n)
		for _, mode := range []struct {
			name string
			vec  bool
		}{{"f16c", true}, {"go", false}} {
			b.Run(mode.name+"/"+map[int]string{1 << 12: "4K", 1 << 22: "4M"}[n], func(b *testing.B) {
				defer func(v bool) { hasF16C = v }(hasF16C)
				hasF16C = hasF16C && mode.vec
				b.SetBytes(int64(6 * n))
				for b.Loop() {
					ToFloat32s(dst, src)
				}
			})
		}
	}
}
