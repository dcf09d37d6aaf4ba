package gemm

import "math"

// halfMatrix is a read-only view of a row-major binary16 matrix (float16
// weights used in place), as operand is of a float32 one: element (i, j)
// of op(X) is data[i*ld+j], or data[j*ld+i] when trans. Packing widens
// each element to float32, so the kernels never see float16.
type halfMatrix struct {
	data  []uint16
	ld    int
	trans bool
}

// blockA implements aSource: it packs the block, widening it.
func (a halfMatrix) blockA(buf []float32, i0, mc, p0, kc, mr int) []float32 {
	a.packA(buf, i0, mc, p0, kc, mr)
	return buf[:roundUp(mc, mr)*kc]
}

// packA packs op(A)[i0:i0+mc, p0:p0+kc] as operand.packA does.
func (a halfMatrix) packA(dst []float32, i0, mc, p0, kc, mr int) {
	if a.trans {
		for ir := 0; ir < mc; ir += mr {
			runsHalf(dst[ir*kc:], mr, a.data[p0*a.ld+i0+ir:], a.ld, kc, min(mr, mc-ir))
		}
		return
	}
	for ir := 0; ir < mc; ir += mr {
		interleaveHalf(dst[ir*kc:(ir+mr)*kc], mr, min(mr, mc-ir), a.data, (i0+ir)*a.ld+p0, a.ld, kc)
	}
}

// packB implements bSource.
func (b halfMatrix) packB(dst []float32, p0, kc, j0, nc, nr int) {
	if !b.trans {
		for jr := 0; jr < nc; jr += nr {
			runsHalf(dst[jr*kc:], nr, b.data[p0*b.ld+j0+jr:], b.ld, kc, min(nr, nc-jr))
		}
		return
	}
	for jr := 0; jr < nc; jr += nr {
		interleaveHalf(dst[jr*kc:(jr+nr)*kc], nr, min(nr, nc-jr), b.data, (j0+jr)*b.ld+p0, b.ld, kc)
	}
}

// runsHalf writes dst[p*stride+c] = src[p*ld+c] widened for c < w and
// zeros for w <= c < stride, for every p < kc.
func runsHalf(dst []float32, stride int, src []uint16, ld, kc, w int) {
	if runsHalfFast(dst, stride, src, ld, kc, w) {
		return
	}
	for p := range kc {
		d := dst[p*stride : (p+1)*stride]
		for c, h := range src[p*ld : p*ld+w] {
			d[c] = halfToFloat32(h)
		}
		clear(d[w:])
	}
}

// interleaveHalf is interleave for binary16 rows: dst[p*stride+r] =
// data[off+r*ld+p] widened, for r < n and p < kc, zeros for n <= r <
// stride.
func interleaveHalf(dst []float32, stride, n int, data []uint16, off, ld, kc int) {
	dst = dst[:kc*stride]
	p0 := interleaveHalfFast(dst, stride, n, data, off, ld, kc)
	if p0 == kc {
		return
	}
	for r := range n {
		for p, h := range data[off+r*ld+p0 : off+r*ld+kc] {
			dst[(p0+p)*stride+r] = halfToFloat32(h)
		}
	}
	if n < stride {
		for p := p0; p < kc; p++ {
			clear(dst[p*stride+n : (p+1)*stride])
		}
	}
}

// halfToFloat32 widens an IEEE 754 binary16 value exactly (subnormals,
// infinities and NaNs included).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal: man * 2^-24, exact in float32.
	v := float32(man) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}
