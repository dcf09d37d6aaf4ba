package f16

import (
	"fmt"
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// signallingNaN reports whether h is a binary16 NaN with the quiet bit clear.
func signallingNaN(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 && h&0x200 == 0 }

// mode is one conversion path, chosen by switching the CPU flags.
type mode struct {
	name            string
	f16c, avx512    bool
	needF16C, need5 bool // what the CPU must have for the mode to differ from "go"
}

var modes = []mode{
	{name: "avx512", f16c: true, avx512: true, needF16C: true, need5: true},
	{name: "f16c", f16c: true, needF16C: true},
	{name: "go"},
}

// with runs fn with the CPU flags of m (never turning on what the CPU
// lacks), and reports false, running nothing, when the CPU lacks m's path.
func (m mode) with(fn func()) bool {
	if (m.needF16C && !hasF16C) || (m.need5 && !hasAVX512) {
		return false
	}
	defer func(f, a bool) { hasF16C, hasAVX512 = f, a }(hasF16C, hasAVX512)
	hasF16C, hasAVX512 = m.f16c, m.avx512
	fn()
	return true
}

// check converts s with ToFloat32s and compares the bits with
// safetensors.HalfToFloat32, one value at a time; dst is longer than s and
// must stay untouched past len(s).
func check(t *testing.T, what string, s []uint16) {
	t.Helper()
	dst := make([]float32, len(s)+3)
	for i := range dst {
		dst[i] = -7
	}
	ToFloat32s(dst, s)
	for i, h := range s {
		got, want := math.Float32bits(dst[i]), math.Float32bits(safetensors.HalfToFloat32(h))
		if signallingNaN(h) {
			if !math.IsNaN(float64(dst[i])) || got&^(1<<22) != want {
				t.Fatalf("%s: %#04x: got %#08x, want NaN %#08x (quiet bit aside)", what, h, got, want)
			}
			continue
		}
		if got != want {
			t.Fatalf("%s: %#04x at %d: got %#08x, want %#08x", what, h, i, got, want)
		}
	}
	for _, v := range dst[len(s):] {
		if v != -7 {
			t.Fatalf("%s: wrote past len(src)", what)
		}
	}
}

// TestAllValues converts every binary16 bit pattern with each path the CPU
// has (AVX-512, F16C, pure Go), at several offsets, so that every value
// passes through the vector loops and the tails, and compares the bits with
// the scalar safetensors.HalfToFloat32.
func TestAllValues(t *testing.T) {
	t.Logf("kernel: %s", Kernel())
	src := make([]uint16, 1<<16+77)
	for i := range src {
		src[i] = uint16(i * 40503) // a permutation of all values, then 77 more
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ran := m.with(func() {
				for _, off := range []int{0, 1, 5, 8, 16, 61} {
					check(t, fmt.Sprintf("offset %d", off), src[off:])
				}
			})
			if !ran {
				t.Skipf("the CPU lacks the %s path", m.name)
			}
		})
	}
}

// TestLengths converts every length up to 200, so that each loop of each
// path (64, 16 and 8 values a step, and the scalar tail) starts and stops
// at every boundary.
func TestLengths(t *testing.T) {
	src := make([]uint16, 200)
	for i := range src {
		src[i] = uint16(i*7919 + 1)
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ran := m.with(func() {
				for n := 0; n <= len(src); n++ {
					check(t, fmt.Sprintf("length %d", n), src[len(src)-n:])
				}
			})
			if !ran {
				t.Skipf("the CPU lacks the %s path", m.name)
			}
		})
	}
}

// BenchmarkToFloat32s times each path the CPU has on a slice that fits in
// the L1/L2 caches (4K values) and on one that does not (4M).
func BenchmarkToFloat32s(b *testing.B) {
	for _, n := range []int{1 << 12, 1 << 22} {
		src := make([]uint16, n)
		for i := range src {
			src[i] = uint16(i*40503) & 0xbbff // finite values
		}
		dst := make([]float32, n)
		for _, m := range modes {
			b.Run(m.name+"/"+map[int]string{1 << 12: "4K", 1 << 22: "4M"}[n], func(b *testing.B) {
				ran := m.with(func() {
					b.SetBytes(int64(6 * n))
					for b.Loop() {
						ToFloat32s(dst, src)
					}
				})
				if !ran {
					b.Skipf("the CPU lacks the %s path", m.name)
				}
			})
		}
	}
}
