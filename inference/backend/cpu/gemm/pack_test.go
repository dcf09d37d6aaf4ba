package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestInterleave checks the panel packing (with the AVX-512 transpose
// where the CPU has it) against its definition, for the panel shapes of
// every kernel, full and partial panels, and column counts around the
// transpose's 16-column chunks.
func TestInterleave(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, stride := range []int{4, 6, 14, 16, 32} {
		for _, n := range []int{1, 2, 3, stride - 1, stride} {
			if n < 1 || n > stride {
				continue
			}
			for _, kc := range []int{1, 7, 15, 16, 17, 31, 32, 33, 100, 256} {
				ld := kc + r.IntN(5)
				off := r.IntN(3)
				data := make([]float32, off+(n-1)*ld+kc+r.IntN(2))
				for i := range data {
					data[i] = r.Float32()*2 - 1
				}
				dst := make([]float32, kc*stride)
				for i := range dst {
					dst[i] = 42 // stale values: every slot must be written
				}
				interleave(dst, stride, n, data, off, ld, kc)
				for p := range kc {
					for c := range stride {
						want := float32(0)
						if c < n {
							want = data[off+c*ld+p]
						}
						if got := dst[p*stride+c]; got != want {
							t.Fatalf("stride %d n %d kc %d ld %d: dst[%d][%d] = %g, want %g", stride, n, kc, ld, p, c, got, want)
						}
					}
				}
			}
		}
	}
}

// TestInterleaveFastUsed checks that the transpose path runs where the
// CPU has AVX-512, so TestInterleave tests it there.
func TestInterleaveFastUsed(t *testing.T) {
	if !haveAVX512Pack {
		t.Skip("no AVX-512: the Go packing is the only one")
	}
	data := make([]float32, 14*40)
	dst := make([]float32, 14*40)
	if got := interleaveFast(dst, 14, 14, data, 0, 40, 40); got != 32 {
		t.Fatalf("interleaveFast packed %d columns of 40, want 32", got)
	}
}

// BenchmarkInterleave packs a 14-row A panel and a 32-column B panel of
// kc = 256, with the transpose where the CPU has it ("fast") and with the
// portable loops ("go").
func BenchmarkInterleave(b *testing.B) {
	const kc, ld = 256, 1152
	data := make([]float32, 32*ld)
	for _, stride := range []int{14, 32} {
		dst := make([]float32, kc*stride)
		b.Run(fmt.Sprintf("fast/%d", stride), func(b *testing.B) {
			b.SetBytes(int64(4 * kc * stride))
			for b.Loop() {
				interleave(dst, stride, stride, data, 0, ld, kc)
			}
		})
		b.Run(fmt.Sprintf("go/%d", stride), func(b *testing.B) {
			b.SetBytes(int64(4 * kc * stride))
			for b.Loop() {
				interleaveFrom(dst, stride, stride, data, 0, ld, kc, 0)
			}
		})
	}
}
