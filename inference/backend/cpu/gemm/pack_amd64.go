package gemm

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// haveAVX512Pack is fixed at start-up.
var haveAVX512Pack = x86.HasAVX512()

// interleave16AVX512 packs chunks*16 columns of rows (14 or 16) source
// rows, row r at src + r*ld, into a panel whose row p (column p of the
// sources) starts at dst + p*dstride: a 16×16 register transpose per
// chunk. Rows past rows are not read; their panel slots are left as they
// are. In pack_avx512_amd64.s.
//
//go:noescape
func interleave16AVX512(dst *float32, dstride int, src *float32, ld int, chunks int, rows int)

// interleaveFast packs the leading multiple of 16 columns of n equally
// spaced rows (row r is data[off+r*ld:][:kc]) into dst with the AVX-512
// transpose when the panel shape allows it (14 rows into a 14-wide panel,
// or 16 or 32 rows into a panel of that width), and returns how many
// columns it packed (0: none, the caller does it all).
func interleaveFast(dst []float32, stride, n int, data []float32, off, ld, kc int) int {
	chunks, ok := transposeChunks(stride, n, kc)
	if !ok {
		return 0
	}
	done := chunks * 16
	// Bounds: the last row's last packed column and the panel's last slot.
	_ = data[off+(n-1)*ld+done-1]
	_ = dst[(done-1)*stride+n-1]
	interleave16AVX512(&dst[0], stride, &data[off], ld, chunks, min(n, 16))
	if n == 32 {
		interleave16AVX512(&dst[16], stride, &data[off+16*ld], ld, chunks, 16)
	}
	return done
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
