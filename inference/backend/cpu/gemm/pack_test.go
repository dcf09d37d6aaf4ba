package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// packModes runs f once for each set of packing kernels this CPU has
// (AVX-512 with AVX2, AVX2 alone, none), restoring the detected ones after.
func packModes(t *testing.T, f func(mode string)) {
	t.Helper()
	h512, h2 := haveAVX512Pack, haveAVX2Pack
	defer func() { haveAVX512Pack, haveAVX2Pack = h512, h2 }()
	if h512 {
		f("avx512+avx2")
	}
	haveAVX512Pack = false
	if h2 {
		f("avx2")
	}
	haveAVX2Pack = false
	f("go")
}

// TestInterleave checks the panel packing (with the AVX-512 and AVX2
// transposes where the CPU has them, and without) against its
// definition, for the panel shapes of every kernel, full and partial
// panels, and column counts around the transposes' 8- and 16-column
// chunks.
func TestInterleave(t *testing.T) {
	packModes(t, func(mode string) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, stride := range []int{4, 6, 8, 14, 16, 32} {
			for _, n := range []int{1, 2, 3, 5, 6, stride - 1, stride} {
				if n < 1 || n > stride {
					continue
				}
				for _, kc := range []int{1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40, 41, 100, 256} {
					ld := kc + r.IntN(5)
					off := r.IntN(3)
					// No slack after the last row's kc values, so that the
					// wrappers' bounds checks must be exact.
					data := make([]float32, off+(n-1)*ld+kc)
					for i := range data {
						data[i] = r.Float32()*2 - 1
					}
					dst := make([]float32, kc*stride+8) // 8 past the panel: must stay
					for i := range dst {
						dst[i] = 42 // stale values: every slot must be written
					}
					interleave(dst[:kc*stride], stride, n, data, off, ld, kc)
					for i := kc * stride; i < len(dst); i++ {
						if dst[i] != 42 {
							t.Fatalf("%s stride %d n %d kc %d: wrote past the panel", mode, stride, n, kc)
						}
					}
					for p := range kc {
						for c := range stride {
							want := float32(0)
							if c < n {
								want = data[off+c*ld+p]
							}
							if got := dst[p*stride+c]; got != want {
								t.Fatalf("%s stride %d n %d kc %d ld %d: dst[%d][%d] = %g, want %g",
									mode, stride, n, kc, ld, p, c, got, want)
							}
						}
					}
				}
			}
		}
	})
}

// TestRuns checks the copies of row runs into panels (with AVX2 moves
// where the CPU has them, and without) against their definition, for
// every run width up to the panel's and row counts around the AVX2
// loop's pairs.
func TestRuns(t *testing.T) {
	packModes(t, func(mode string) {
		r := rand.New(rand.NewPCG(3, 4))
		runsCases(r, func(stride, w, kc, ld int) {
			src := make([]float32, (kc-1)*ld+w) // no slack, as in TestInterleave
			for i := range src {
				src[i] = r.Float32()*2 - 1
			}
			dst := panelDst(kc * stride)
			runs(dst, stride, src, ld, kc, w)
			checkRunsPanel(t, mode, dst, src, stride, w, kc, ld)
		})
	})
}

// TestRunsHalf checks the widening runs (with the AVX-512 masked moves
// where the CPU has them, and without) against their definition, as
// TestRuns does the float32 ones.
func TestRunsHalf(t *testing.T) {
	packModes(t, func(mode string) {
		r := rand.New(rand.NewPCG(7, 8))
		runsCases(r, func(stride, w, kc, ld int) {
			src, wide := randomHalf(r, (kc-1)*ld+w) // no slack
			dst := panelDst(kc * stride)
			runsHalf(dst, stride, src, ld, kc, w)
			checkRunsPanel(t, mode, dst, wide, stride, w, kc, ld)
		})
	})
}

// runsCases calls check for every panel width of the kernels, run width
// and a few row counts, with a row stride ld of w or a little more.
func runsCases(r *rand.Rand, check func(stride, w, kc, ld int)) {
	for _, stride := range []int{4, 6, 14, 16, 32} {
		for w := 1; w <= stride; w++ {
			for _, kc := range []int{1, 2, 3, 7, 8, 9} {
				check(stride, w, kc, w+r.IntN(5))
			}
		}
	}
}

// panelDst returns a panel of n floats and one more past it, all 42, so
// that a check sees what a pack left unwritten or wrote past the end.
func panelDst(n int) []float32 {
	dst := make([]float32, n+1)
	for i := range dst {
		dst[i] = 42
	}
	return dst
}

// checkRunsPanel checks dst[p*stride+c] = src[p*ld+c] for c < w, 0 for
// w <= c < stride, and the float past the panel untouched.
func checkRunsPanel(t *testing.T, mode string, dst, src []float32, stride, w, kc, ld int) {
	t.Helper()
	for p := range kc {
		for c := range stride {
			want := float32(0)
			if c < w {
				want = src[p*ld+c]
			}
			if got := dst[p*stride+c]; got != want {
				t.Fatalf("%s stride %d w %d kc %d ld %d: dst[%d][%d] = %g, want %g",
					mode, stride, w, kc, ld, p, c, got, want)
			}
		}
	}
	if dst[kc*stride] != 42 {
		t.Fatalf("%s stride %d w %d kc %d: wrote past the panel", mode, stride, w, kc)
	}
}

// TestInterleaveFastUsed checks that the transpose paths run where the
// CPU has AVX-512 or AVX2, so TestInterleave tests them there.
func TestInterleaveFastUsed(t *testing.T) {
	if !haveAVX512Pack && !haveAVX2Pack {
		t.Skip("no AVX2: the Go packing is the only one")
	}
	data := make([]float32, 16*41)
	dst := make([]float32, 16*41)
	for _, c := range []struct{ stride, want int }{{6, 40}, {16, 40}, {14, 32}} {
		if c.stride == 14 && !haveAVX512Pack {
			continue
		}
		if got := interleaveFast(dst, c.stride, c.stride, data, 0, 41, 41); got != c.want {
			t.Errorf("interleaveFast packed %d columns of 41 into width %d, want %d", got, c.stride, c.want)
		}
	}
	if haveAVX2Pack && !runsFast(dst, 16, data, 41, 8, 16) {
		t.Error("runsFast did not take a 16-wide run")
	}
	if haveAVX512Pack && !runsFast(make([]float32, 32*8), 32, make([]float32, 7*41+32), 41, 8, 32) {
		t.Error("runsFast did not take a 32-wide run")
	}
	if haveAVX512Pack && !runsFast(make([]float32, 14*8), 14, make([]float32, 7*41+13), 41, 8, 13) {
		t.Error("runsFast did not take a 13-wide run into a 14-wide panel")
	}
	if haveAVX512Pack && !runsHalfFast(make([]float32, 14*8), 14, make([]uint16, 7*41+14), 41, 8, 14) {
		t.Error("runsHalfFast did not take a 14-wide run")
	}
}

// BenchmarkInterleave packs A and B panels of kc = 256 of the AVX-512
// (14, 32) and AVX2 (6, 16) kernels' widths, with the transposes where the
// CPU has them ("fast") and with the portable loops ("go"). The rows are
// ld = 1152 apart: one panel's source is in L1/L2 ("hot"); "cold" walks
// 64 MiB of rows so that they come from memory.
func BenchmarkInterleave(b *testing.B) {
	const kc, ld = 256, 1152
	cold := coldRows()
	for _, stride := range []int{6, 14, 16, 32} {
		dst := make([]float32, kc*stride)
		for _, temp := range []string{"hot", "cold"} {
			for _, impl := range []struct {
				name string
				fn   func(data []float32, off int)
			}{
				{"fast", func(data []float32, off int) { interleave(dst, stride, stride, data, off, ld, kc) }},
				{"go", func(data []float32, off int) { interleaveFrom(dst, stride, stride, data, off, ld, kc, 0) }},
			} {
				b.Run(fmt.Sprintf("%s/%d/%s", impl.name, stride, temp), func(b *testing.B) {
					b.SetBytes(int64(4 * kc * stride))
					span := stride * ld
					off := 0
					for b.Loop() {
						impl.fn(cold, off)
						if temp == "cold" {
							off += span
							if off+span > len(cold) {
								off = 0
							}
						}
					}
				})
			}
		}
	}
}

// coldRows returns 64 MiB of nonzero floats (untouched zero pages would
// all read the same cached page).
func coldRows() []float32 {
	v := make([]float32, 16<<20)
	for i := range v {
		v[i] = float32(i & 1023)
	}
	return v
}

// BenchmarkRuns packs the AVX2 kernel's A (6 wide, transposed A) and B
// (16 wide) panels and the AVX-512 kernel's B panels (32 wide) from row
// runs, pStep = 8 rows a call as the packers do, for kc = 256 and ld =
// 1152, with vector moves where the CPU has them ("fast") and the Go loop
// ("go"); "cold" as in BenchmarkInterleave.
func BenchmarkRuns(b *testing.B) {
	const kc, ld = 256, 1152
	cold := coldRows()
	for _, w := range []int{6, 14, 16, 32} {
		dst := make([]float32, kc*w)
		for _, temp := range []string{"hot", "cold"} {
			for _, impl := range []struct {
				name string
				fn   func(dst []float32, stride int, src []float32, ld, kc, w int)
			}{{"fast", runs}, {"go", runsGo}} {
				b.Run(fmt.Sprintf("%s/%d/%s", impl.name, w, temp), func(b *testing.B) {
					b.SetBytes(int64(4 * kc * w))
					span := kc * ld
					off := 0
					for b.Loop() {
						for p := 0; p < kc; p += pStep {
							impl.fn(dst[p*w:], w, cold[off+p*ld:], ld, pStep, w)
						}
						if temp == "cold" {
							off += span
							if off+span > len(cold) {
								off = 0
							}
						}
					}
				})
			}
		}
	}
}

// BenchmarkPackHalf widens float16 weights as the GEMM does, in block's
// order (every kc=256 column block over all rows): a convolution weight
// [1280, 11520] as A in 14-row panels of 168-row blocks, and a linear
// weight W [1280, 1280] as B = Wᵀ in 32-row panels (the forward, y = x
// Wᵀ) or as B = W in 32-column runs (the backward, dx = dy W). The
// weights are cold:
// the runs cycle over 256 MB of them. MB/s counts float16 bytes read.
func BenchmarkPackHalf(b *testing.B) {
	const kc = 256
	for _, c := range []struct {
		name          string
		rows, cols    int
		asA, backward bool
	}{{"A-conv-1280x11520", 1280, 11520, true, false}, {"B-linear-1280x1280", 1280, 1280, false, false},
		{"B-linear-backward-1280x1280", 1280, 1280, false, true}} {
		var mats [][]uint16
		for len(mats)*c.rows*c.cols*2 < 256<<20 {
			m := make([]uint16, c.rows*c.cols)
			for i := range m {
				m[i] = uint16(0x3c00 + i&255)
			}
			mats = append(mats, m)
		}
		dst := make([]float32, c.rows*kc)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(2 * c.rows * c.cols))
			i := 0
			for b.Loop() {
				h := halfMatrix{data: mats[i%len(mats)], ld: c.cols, trans: !c.asA && !c.backward}
				i++
				for pc := 0; pc < c.cols; pc += kc {
					if !c.asA { // Wᵀ forward (y = x Wᵀ), W backward (dx = dy W)
						h.packB(dst, pc, kc, 0, c.rows, 32)
						continue
					}
					for ic := 0; ic < c.rows; ic += 168 {
						h.packA(dst, ic, min(168, c.rows-ic), pc, kc, 14)
					}
				}
			}
		})
	}
}

// BenchmarkPackATrans packs a transposed A as the backward pass of a
// convolution does (dcol = wᵀ dy): the weight w [1280, 11520], float32 or
// float16, read as op(A) = wᵀ [11520, 1280] in 14-row panels of 168-row
// blocks, every kc=256 column block. The weights cycle over 256 MB, so
// they come from memory. MB/s counts the bytes of w read.
func BenchmarkPackATrans(b *testing.B) {
	const rows, cols, kc, mc = 1280, 11520, 256, 168
	for _, half := range []bool{false, true} {
		size := 4
		if half {
			size = 2
		}
		var f32 [][]float32
		var f16 [][]uint16
		for n := 0; n*rows*cols*size < 256<<20; n++ {
			if half {
				m := make([]uint16, rows*cols)
				for i := range m {
					m[i] = uint16(0x3c00 + i&255)
				}
				f16 = append(f16, m)
			} else {
				m := make([]float32, rows*cols)
				for i := range m {
					m[i] = float32(i & 255)
				}
				f32 = append(f32, m)
			}
		}
		name := "float32"
		if half {
			name = "float16"
		}
		dst := make([]float32, mc*kc)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(size * rows * cols))
			i := 0
			for b.Loop() {
				var a aSource
				if half {
					a = halfMatrix{data: f16[i%len(f16)], ld: cols, trans: true}
				} else {
					a = operand{data: f32[i%len(f32)], ld: cols, trans: true}
				}
				i++
				for pc := 0; pc < rows; pc += kc {
					for ic := 0; ic < cols; ic += mc {
						a.blockA(dst, ic, min(mc, cols-ic), pc, kc, 14)
					}
				}
			}
		})
	}
}
