package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/internal/gemmtest"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// TestHalfToFloat32 checks the widening of every binary16 value against
// the weights package's conversion.
func TestHalfToFloat32(t *testing.T) {
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	want := make([]float32, len(all))
	weights.HalfToFloat32s(want, all)
	for i, h := range all {
		got := halfToFloat32(h)
		if math.Float32bits(got) != math.Float32bits(want[i]) && !(got != got && want[i] != want[i]) {
			t.Fatalf("halfToFloat32(%#04x) = %g, want %g", h, got, want[i])
		}
	}
}

// randomHalf returns n random binary16 values of magnitude below 2 (some
// subnormal) and their float32 widening.
func randomHalf(r *rand.Rand, n int) ([]uint16, []float32) {
	h := make([]uint16, n)
	f := make([]float32, n)
	for i := range h {
		h[i] = uint16(r.IntN(0x4000)) | uint16(r.IntN(2))<<15 // exponent < 16: |v| < 2
		f[i] = halfToFloat32(h[i])
	}
	return h, f
}

// TestSgemmHalf checks that SgemmHalfA and SgemmHalfB give exactly what
// Sgemm (tested against float64) gives on the widened operand, for every
// kernel, thread count, transpose pair and shape, with strides wider than
// the rows.
func TestSgemmHalf(t *testing.T) {
	shapes := gemmtest.Shapes
	if testing.Short() {
		shapes = gemmtest.ShortShapes
	}
	shapes = append(shapes, gemmtest.Shape{M: 30, N: 70, K: 300}, gemmtest.Shape{M: 64, N: 33, K: 64})
	r := rand.New(rand.NewPCG(3, 4))
	for name, kn := range kernels() {
		for _, threads := range []int{1, 2} {
			e := &Engine{kern: kn}
			for _, s := range shapes {
				for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
					t.Run(fmt.Sprintf("%s/t%d/%dx%dx%d/%v", name, threads, s.M, s.N, s.K, tr), func(t *testing.T) {
						lda, ldb := s.K+3, s.N+2
						if tr[0] {
							lda = s.M + 1
						}
						if tr[1] {
							ldb = s.K + 5
						}
						rowsA, rowsB := s.M, s.K
						if tr[0] {
							rowsA = s.K
						}
						if tr[1] {
							rowsB = s.N
						}
						ah, af := randomHalf(r, rowsA*lda)
						bh, bf := randomHalf(r, rowsB*ldb)
						c0 := make([]float32, s.M*s.N)
						for i := range c0 {
							c0[i] = r.Float32()
						}
						want := append([]float32(nil), c0...)
						e.Sgemm(threads, tr[0], tr[1], s.M, s.N, s.K, 0.75, af, lda, bf, ldb, 0.5, want, s.N)
						gotA := append([]float32(nil), c0...)
						e.SgemmHalfA(threads, tr[0], tr[1], s.M, s.N, s.K, 0.75, ah, lda, bf, ldb, 0.5, gotA, s.N)
						gotB := append([]float32(nil), c0...)
						e.SgemmHalfB(threads, tr[0], tr[1], s.M, s.N, s.K, 0.75, af, lda, bh, ldb, 0.5, gotB, s.N)
						for i := range want {
							if gotA[i] != want[i] || gotB[i] != want[i] {
								t.Fatalf("c[%d]: half A %g, half B %g, float32 %g", i, gotA[i], gotB[i], want[i])
							}
						}
					})
				}
			}
		}
	}
}

// TestSgemmHalfBadArgsPanic checks that short half operands panic.
func TestSgemmHalfBadArgsPanic(t *testing.T) {
	var e Engine
	for name, f := range map[string]func(){
		"A": func() {
			e.SgemmHalfA(1, false, false, 2, 2, 2, 1, make([]uint16, 3), 2, make([]float32, 4), 2, 0, make([]float32, 4), 2)
		},
		"B": func() {
			e.SgemmHalfB(1, false, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]uint16, 3), 2, 0, make([]float32, 4), 2)
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("short half %s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// TestInterleaveHalf checks the float16 panel packing against its
// definition, as TestInterleave does for float32.
func TestInterleaveHalf(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, stride := range []int{4, 14, 16, 32} {
		for _, n := range []int{1, 3, stride - 1, stride} {
			for _, kc := range []int{1, 15, 16, 17, 33, 256} {
				ld := kc + r.IntN(5)
				off := r.IntN(3)
				data, wide := randomHalf(r, off+(n-1)*ld+kc)
				dst := make([]float32, kc*stride)
				for i := range dst {
					dst[i] = 42
				}
				interleaveHalf(dst, stride, n, data, off, ld, kc)
				for p := range kc {
					for c := range stride {
						want := float32(0)
						if c < n {
							want = wide[off+c*ld+p]
						}
						if got := dst[p*stride+c]; got != want {
							t.Fatalf("stride %d n %d kc %d: dst[%d][%d] = %g, want %g", stride, n, kc, p, c, got, want)
						}
					}
				}
			}
		}
	}
}
