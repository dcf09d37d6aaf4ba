package gemm

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// The packing kernels this CPU runs, fixed at start-up (tests turn them
// off to reach the Go loops).
var (
	haveAVX512Pack = x86.HasAVX512()
	haveAVX2Pack   = x86.HasAVX2FMA()
)

// interleave16AVX512 packs chunks*16 columns of rows (14 or 16) source
// rows, row r at src + r*ld, into a panel whose row p (column p of the
// sources) starts at dst + p*dstride: a 16×16 register transpose per
// chunk. Rows past rows are not read; their panel slots are left as they
// are. In pack_avx512_amd64.s.
//
//go:noescape
func interleave16AVX512(dst *float32, dstride int, src *float32, ld int, chunks int, rows int)

// interleave8AVX2 packs chunks*8 columns of 8 source rows, row r at src
// + r*ld, into a panel whose row p (column p of the sources) starts at dst
// + p*dstride, filling its first 8 slots: an 8×8 register transpose per
// chunk. In pack_avx2_amd64.s.
//
//go:noescape
func interleave8AVX2(dst *float32, dstride int, src *float32, ld int, chunks int)

// interleave6AVX2 packs chunks*8 columns of 6 source rows, row r at src +
// r*ld, into a panel of width 6 at dst. In pack_avx2_amd64.s.
//
//go:noescape
func interleave6AVX2(dst *float32, src *float32, ld int, chunks int)

// interleaveFast packs a leading part of the columns of n equally spaced
// rows (row r is data[off+r*ld:][:kc]) into dst with register transposes
// when the panel shape allows it, and returns how many columns it packed
// (0: none, the caller does it all). AVX-512 packs chunks of 16 columns of
// 14 rows into a 14-wide panel, or of 16 or 32 rows into a panel of that
// width; AVX2 then packs chunks of 8 columns of 6 rows into a 6-wide
// panel, or of 8, 16 or 32 rows into a panel of that width.
func interleaveFast(dst []float32, stride, n int, data []float32, off, ld, kc int) int {
	done := 0
	if chunks, ok := transposeChunks(stride, n, kc); ok {
		done = chunks * 16
		// Bounds: the last row's last packed column and the panel's last slot.
		_ = data[off+(n-1)*ld+done-1]
		_ = dst[(done-1)*stride+n-1]
		interleave16AVX512(&dst[0], stride, &data[off], ld, chunks, min(n, 16))
		if n == 32 {
			interleave16AVX512(&dst[16], stride, &data[off+16*ld], ld, chunks, 16)
		}
	}
	if !haveAVX2Pack || n != stride || kc-done < 8 || (n != 6 && n%8 != 0) {
		return done
	}
	chunks := (kc - done) / 8
	end := done + 8*chunks
	_ = data[off+(n-1)*ld+end-1]
	_ = dst[(end-1)*stride+n-1]
	if n == 6 {
		interleave6AVX2(&dst[done*6], &data[off+done], ld, chunks)
	} else {
		for r := 0; r < n; r += 8 {
			interleave8AVX2(&dst[done*stride+r], stride, &data[off+r*ld+done], ld, chunks)
		}
	}
	return end
}

// runs16AVX2 and runs6AVX2 are runs for w = stride = 16 and 6, in
// pack_avx2_amd64.s.
//
//go:noescape
func runs16AVX2(dst *float32, src *float32, ld int, kc int)

//go:noescape
func runs6AVX2(dst *float32, src *float32, ld int, kc int)

// runs32AVX512 is runs for w = stride = 32, in pack_avx512_amd64.s.
//
//go:noescape
func runs32AVX512(dst *float32, src *float32, ld int, kc int)

// runsMaskedAVX512 is runs for any w <= stride <= 32, with masked moves;
// masks is runsMasks(w, stride). In pack_avx512_amd64.s.
//
//go:noescape
func runsMaskedAVX512(dst *float32, stride int, src *float32, ld int, kc int, masks uint64)

// runsHalfMaskedAVX512 is runsMaskedAVX512 for binary16 rows, widened. In
// pack_avx512_amd64.s.
//
//go:noescape
func runsHalfMaskedAVX512(dst *float32, stride int, src *uint16, ld int, kc int, masks uint64)

// runsMasks packs the AVX-512 masks of a run of w values into a panel of
// width stride (w <= stride <= 32): loads of columns 0-15 and 16-31 (bits
// 0-15 and 16-31), then stores of the same (bits 32-47 and 48-63).
func runsMasks(w, stride int) uint64 {
	lanes := func(n int) uint64 { return 1<<min(n, 16) - 1 }
	return lanes(w) | lanes(max(w-16, 0))<<16 | lanes(stride)<<32 | lanes(max(stride-16, 0))<<48
}

// runsFast does runs with vector moves and reports whether it did: any
// panel up to 32 wide with AVX-512 (plain moves for the 14x32 kernel's full
// B panels, masked ones otherwise); with AVX2 alone, full panels 16 or 6
// wide.
func runsFast(dst []float32, stride int, src []float32, ld, kc, w int) bool {
	if haveAVX512Pack && stride <= 32 && w > 0 && kc > 0 {
		_ = src[(kc-1)*ld+w-1]
		_ = dst[kc*stride-1]
		if w == 32 && stride == 32 {
			runs32AVX512(&dst[0], &src[0], ld, kc)
		} else {
			runsMaskedAVX512(&dst[0], stride, &src[0], ld, kc, runsMasks(w, stride))
		}
		return true
	}
	if !haveAVX2Pack || w != stride || (w != 16 && w != 6) || kc <= 0 {
		return false
	}
	_ = src[(kc-1)*ld+w-1]
	_ = dst[kc*w-1]
	if w == 16 {
		runs16AVX2(&dst[0], &src[0], ld, kc)
	} else {
		runs6AVX2(&dst[0], &src[0], ld, kc)
	}
	return true
}

// transposeChunks says whether the register transpose packs n rows into a
// panel of width stride (14 rows into 14, 16 into 16 or 32 into 32, on a
// CPU with AVX-512), and how many 16-column chunks of kc it takes.
func transposeChunks(stride, n, kc int) (chunks int, ok bool) {
	if !haveAVX512Pack || kc < 16 || n != stride || (n != 14 && n != 16 && n != 32) {
		return 0, false
	}
	return kc / 16, true
}

// interleave16HalfAVX512 is interleave16AVX512 for binary16 rows,
// widened as they are loaded (VCVTPH2PS).
//
//go:noescape
func interleave16HalfAVX512(dst *float32, dstride int, src *uint16, ld int, chunks int, rows int)

// interleaveHalfFast is interleaveFast for binary16 rows.
func interleaveHalfFast(dst []float32, stride, n int, data []uint16, off, ld, kc int) int {
	chunks, ok := transposeChunks(stride, n, kc)
	if !ok {
		return 0
	}
	done := chunks * 16
	_ = data[off+(n-1)*ld+done-1]
	_ = dst[(done-1)*stride+n-1]
	interleave16HalfAVX512(&dst[0], stride, &data[off], ld, chunks, min(n, 16))
	if n == 32 {
		interleave16HalfAVX512(&dst[16], stride, &data[off+16*ld], ld, chunks, 16)
	}
	return done
}

// runsHalfFast does runsHalf with AVX-512 masked moves, for any panel up
// to 32 wide, and reports whether it did.
func runsHalfFast(dst []float32, stride int, src []uint16, ld, kc, w int) bool {
	if !haveAVX512Pack || stride > 32 || w <= 0 || kc <= 0 {
		return false
	}
	_ = src[(kc-1)*ld+w-1]
	_ = dst[kc*stride-1]
	runsHalfMaskedAVX512(&dst[0], stride, &src[0], ld, kc, runsMasks(w, stride))
	return true
}
