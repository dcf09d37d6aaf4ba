// Package convkern holds the data-movement kernels of 2-D convolution:
// im2col / col2im and the weight reordering. The GEMMs run on weights in
// the OHIW layout [O][KH][C][KW] (kernel rows outside the input channels),
// whose im2col rows are ordered (kh, c, kw): then one row of the weight is
// the full im2col operand, and the KH slices w[:, kh] (row stride
// KH*C*KW) are the operands of the stride-1 row path, which im2cols over
// (c, kw) only and covers the kernel rows kh by viewing that column matrix
// kh rows further down (one GEMM per kh, a third of im2col's copying for
// 3x3). Legend: B batch, C input channels, O output channels, H/W input
// size, Ho/Wo output size, Hp/Wp padded size.
package convkern

// Par runs fn over [0, n) in parallel chunks of at least minPer items.
type Par func(n, minPer int, fn func(lo, hi int))

// grain is the number of floats worth one parallel task.
const grain = 1 << 14

// Geom is the geometry of one convolution: x [B, C, H, W] * w [O, C, KH,
// KW] -> y [B, O, Ho, Wo].
type Geom struct {
	B, C, H, W     int
	O, KH, KW      int
	S              int // stride
	PT, PB, PL, PR int // zero padding: top, bottom, left, right
	Ho, Wo         int
}

// Hp is the padded input height.
func (g Geom) Hp() int { return g.H + g.PT + g.PB }

// Wp is the padded input width.
func (g Geom) Wp() int { return g.W + g.PL + g.PR }

// Taps is the number of kernel taps KH*KW.
func (g Geom) Taps() int { return g.KH * g.KW }

// RowGeom is the geometry of the row path's partial im2col: a 1xKW
// convolution over the vertically padded input, whose "output rows" are
// the Hp padded input rows. Its Im2col rows are (c, kw), c-major.
func (g Geom) RowGeom() Geom {
	r := g
	r.KH, r.Ho = 1, g.Hp()
	return r
}

// ToOHIW reorders w [O, C, KH, KW] (PyTorch's OIHW) into dst [O, KH, C, KW].
func ToOHIW(par Par, dst, w []float32, g Geom) {
	n := g.C * g.KH * g.KW
	par(g.O, grain/(n+1)+1, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			PermuteOHIW(dst[o*n:(o+1)*n], w[o*n:(o+1)*n], g.C, g.KH, g.KW)
		}
	})
}

// FromOHIW is the inverse of ToOHIW.
func FromOHIW(par Par, w, src []float32, g Geom) {
	n := g.C * g.KH * g.KW
	par(g.O, grain/(n+1)+1, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			dst, s := w[o*n:(o+1)*n], src[o*n:(o+1)*n]
			for kh := 0; kh < g.KH; kh++ {
				for c := 0; c < g.C; c++ {
					d := dst[(c*g.KH+kh)*g.KW : (c*g.KH+kh+1)*g.KW]
					copyShort(d, s[(kh*g.C+c)*g.KW:])
				}
			}
		}
	})
}

// PermuteOHIW writes one output channel's weights src [C, KH, KW] as
// dst [KH, C, KW].
func PermuteOHIW(dst, src []float32, c, kh, kw int) {
	if kh == 1 {
		copy(dst[:c*kw], src)
		return
	}
	for r := 0; r < kh; r++ {
		d := dst[r*c*kw : (r+1)*c*kw]
		if kw == 3 {
			for i := 0; i < c; i++ {
				s := src[(i*kh+r)*3 : (i*kh+r)*3+3]
				d[3*i], d[3*i+1], d[3*i+2] = s[0], s[1], s[2]
			}
			continue
		}
		for i := 0; i < c; i++ {
			copyShort(d[i*kw:(i+1)*kw], src[(i*kh+r)*kw:])
		}
	}
}

// copyShort copies the few values of a kernel row; copy's call costs more.
func copyShort(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = v
	}
}

// validRange returns the range [lo, hi) of j in [0, n) with
// 0 <= j*s+off < size.
func validRange(n, s, off, size int) (lo, hi int) {
	if off < 0 {
		lo = (-off + s - 1) / s
	}
	if size-1-off < 0 {
		return 0, 0
	}
	hi = min(n, (size-1-off)/s+1)
	return min(lo, hi), hi
}

// Im2col fills col [KH*C*KW][ld], rows ordered (kh, c, kw), with the
// inputs seen by output rows [r0, r1) of one image x [C, H, W] in each
// row's first (r1-r0)*Wo columns (ld >= that: a wider col holds several
// images side by side); padding reads as zero.
func Im2col(par Par, col []float32, ld int, x []float32, g Geom, r0, r1 int) {
	ck := g.C * g.KW
	im2col(par, col, ld, x, g, r0, r1, func(row int) (kh, c, kw int) { return row / ck, row % ck / g.KW, row % g.KW })
}

// Im2colOIHW is Im2col with the rows ordered (c, kh, kw), the order of a
// weight [O, C, KH, KW]'s rows, so that weight multiplies col as stored.
func Im2colOIHW(par Par, col []float32, ld int, x []float32, g Geom, r0, r1 int) {
	kk := g.Taps()
	im2col(par, col, ld, x, g, r0, r1, func(row int) (kh, c, kw int) { return row % kk / g.KW, row / kk, row % g.KW })
}

// shortRow is the widest output row im2col fills by a loop rather than by
// clear and copy, whose calls cost more than a few values' moves (the
// small maps of a UNet's inner levels: 8, 4 and 2 wide).
const shortRow = 16

// im2col fills col's rows, row r holding the inputs of tap at(r).
func im2col(par Par, col []float32, ld int, x []float32, g Geom, r0, r1 int, at func(row int) (kh, c, kw int)) {
	nc := (r1 - r0) * g.Wo
	par(g.C*g.Taps(), grain/nc+1, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			kh, c, kw := at(row)
			plane := x[c*g.H*g.W : (c+1)*g.H*g.W]
			dst := col[row*ld : row*ld+nc]
			off := kw - g.PL
			jlo, jhi := validRange(g.Wo, g.S, off, g.W)
			for i := r0; i < r1; i++ {
				d := dst[(i-r0)*g.Wo : (i-r0+1)*g.Wo]
				ih := i*g.S - g.PT + kh
				if ih < 0 || ih >= g.H {
					clear(d)
					continue
				}
				src := plane[ih*g.W : (ih+1)*g.W]
				if g.S == 1 && g.Wo > shortRow {
					clear(d[:jlo])
					clear(d[jhi:])
					copy(d[jlo:jhi], src[jlo+off:])
					continue
				}
				for j := 0; j < jlo; j++ {
					d[j] = 0
				}
				for j := jlo; j < jhi; j++ {
					d[j] = src[j*g.S+off]
				}
				for j := jhi; j < len(d); j++ {
					d[j] = 0
				}
			}
		}
	})
}

// Col2im adds the column gradients col [KH*C*KW][ld] (rows ordered as
// Im2col's, each row's first (r1-r0)*Wo columns) of output rows [r0, r1)
// into dx [C, H, W] of one image. Each channel is one task, so no two
// tasks touch the same element.
func Col2im(par Par, dx, col []float32, ld int, g Geom, r0, r1 int) {
	col2im(par, dx, col, ld, g, r0, r1, func(kh, c, kw int) int { return (kh*g.C+c)*g.KW + kw })
}

// Col2imOIHW is Col2im for columns in Im2colOIHW's row order (c, kh, kw).
func Col2imOIHW(par Par, dx, col []float32, ld int, g Geom, r0, r1 int) {
	col2im(par, dx, col, ld, g, r0, r1, func(kh, c, kw int) int { return (c*g.KH+kh)*g.KW + kw })
}

// col2im adds the column gradients, tap (kh, c, kw) in row rowOf(kh, c, kw).
func col2im(par Par, dx, col []float32, ld int, g Geom, r0, r1 int, rowOf func(kh, c, kw int) int) {
	nc, kk := (r1-r0)*g.Wo, g.Taps()
	par(g.C, grain/(nc*kk)+1, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			plane := dx[c*g.H*g.W : (c+1)*g.H*g.W]
			for k := 0; k < kk; k++ {
				kh, kw := k/g.KW, k%g.KW
				row := rowOf(kh, c, kw)
				src := col[row*ld : row*ld+nc]
				off := kw - g.PL
				jlo, jhi := validRange(g.Wo, g.S, off, g.W)
				for i := r0; i < r1; i++ {
					ih := i*g.S - g.PT + kh
					if ih < 0 || ih >= g.H {
						continue
					}
					s := src[(i-r0)*g.Wo : (i-r0+1)*g.Wo]
					d := plane[ih*g.W : (ih+1)*g.W]
					for j := jlo; j < jhi; j++ {
						d[j*g.S+off] += s[j]
					}
				}
			}
		}
	})
}
