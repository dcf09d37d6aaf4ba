// Package convkern holds the data-movement kernels of 2-D convolution:
// im2col / col2im, and the weight reordering of the stride-1 row path,
// which im2cols over (c, kw) only and covers the kernel rows kh by viewing
// that column matrix kh rows further down (one GEMM per kh, a third of
// im2col's copying for 3x3). Legend: B batch, C input channels, O output
// channels, H/W input size, Ho/Wo output size, Hp/Wp padded size.
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

// PackRows reorders w [O, C, KH, KW] into w3 [KH][O][C*KW], one GEMM
// operand per kernel row kh, matching RowGeom's (c, kw) im2col rows.
func PackRows(par Par, w3, w []float32, g Geom) {
	ck := g.C * g.KW
	par(g.O, grain/(ck*g.KH)+1, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			for c := 0; c < g.C; c++ {
				src := w[(o*g.C+c)*g.KH*g.KW:]
				for kh := 0; kh < g.KH; kh++ {
					copy(w3[(kh*g.O+o)*ck+c*g.KW:(kh*g.O+o)*ck+(c+1)*g.KW], src[kh*g.KW:])
				}
			}
		}
	})
}

// UnpackRows is the inverse of PackRows.
func UnpackRows(par Par, w, w3 []float32, g Geom) {
	ck := g.C * g.KW
	par(g.O, grain/(ck*g.KH)+1, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			for c := 0; c < g.C; c++ {
				dst := w[(o*g.C+c)*g.KH*g.KW:]
				for kh := 0; kh < g.KH; kh++ {
					copy(dst[kh*g.KW:(kh+1)*g.KW], w3[(kh*g.O+o)*ck+c*g.KW:])
				}
			}
		}
	})
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

// Im2col fills col [C*KH*KW][(r1-r0)*Wo] with the inputs seen by output
// rows [r0, r1) of one image x [C, H, W]; padding reads as zero.
func Im2col(par Par, col, x []float32, g Geom, r0, r1 int) {
	nc, kk := (r1-r0)*g.Wo, g.Taps()
	par(g.C*kk, grain/nc+1, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			c, kh, kw := row/kk, row%kk/g.KW, row%g.KW
			plane := x[c*g.H*g.W : (c+1)*g.H*g.W]
			dst := col[row*nc : (row+1)*nc]
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
				clear(d[:jlo])
				clear(d[jhi:])
				if g.S == 1 {
					copy(d[jlo:jhi], src[jlo+off:])
					continue
				}
				for j := jlo; j < jhi; j++ {
					d[j] = src[j*g.S+off]
				}
			}
		}
	})
}

// Col2im adds the column gradients col [C*KH*KW][(r1-r0)*Wo] of output rows
// [r0, r1) into dx [C, H, W] of one image. Each channel is one task, so no
// two tasks touch the same element.
func Col2im(par Par, dx, col []float32, g Geom, r0, r1 int) {
	nc, kk := (r1-r0)*g.Wo, g.Taps()
	par(g.C, grain/(nc*kk)+1, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			plane := dx[c*g.H*g.W : (c+1)*g.H*g.W]
			for k := 0; k < kk; k++ {
				kh, kw := k/g.KW, k%g.KW
				src := col[(c*kk+k)*nc : (c*kk+k+1)*nc]
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
