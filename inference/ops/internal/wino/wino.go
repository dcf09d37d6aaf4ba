// Package wino holds the transforms of Winograd's minimal filtering
// algorithm F(2×2, 3×3) for stride-1 3×3 convolution (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", CVPR 2016): each 2×2 block
// of outputs ("tile") is
//
//	Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d Bᵀᵀ)] A
//
// for the 3×3 filter g and the 4×4 input patch d the tile reads, with
//
//	Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//	G  = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]
//	Aᵀ = [1 1 1 0; 0 1 -1 -1]
//
// so a tile takes 16 multiplications per input channel instead of 36. The
// elementwise product summed over channels is 16 GEMMs, one per position
// k = 4i+j of the 4×4 transformed tile, which the caller runs; this package
// only moves data in and out of the transformed domain.
//
// Layouts: transformed inputs and GEMM outputs are [16][rows][ld], one row
// per channel and one column per tile; a row of tiles reads four padded
// input rows and writes two output rows.
package wino

// Taps is the number of positions of a transformed tile (4×4).
const Taps = 16

// Filters sets u[k*ldk + i] (k < 16, i < n) to G g Gᵀ for the n 3×3
// filters g_i whose tap (kh, kw) is w[i*ldw + kh*rs + kw]. It computes in
// float32: G's halvings are exact, so each value is a few roundings of the
// taps' sums, far below the GEMM's over C*16 products.
func Filters(u []float32, ldk int, w []float32, ldw, rs, n int) {
	if n <= 0 {
		return
	}
	_ = w[(n-1)*ldw+2*rs+2]
	_ = u[15*ldk+n-1]
	u0 := u[0*ldk : 0*ldk+n]
	u1 := u[1*ldk : 1*ldk+n]
	u2 := u[2*ldk : 2*ldk+n]
	u3 := u[3*ldk : 3*ldk+n]
	u4 := u[4*ldk : 4*ldk+n]
	u5 := u[5*ldk : 5*ldk+n]
	u6 := u[6*ldk : 6*ldk+n]
	u7 := u[7*ldk : 7*ldk+n]
	u8 := u[8*ldk : 8*ldk+n]
	u9 := u[9*ldk : 9*ldk+n]
	u10 := u[10*ldk : 10*ldk+n]
	u11 := u[11*ldk : 11*ldk+n]
	u12 := u[12*ldk : 12*ldk+n]
	u13 := u[13*ldk : 13*ldk+n]
	u14 := u[14*ldk : 14*ldk+n]
	u15 := u[15*ldk : 15*ldk+n]
	for i := range n {
		g := w[i*ldw : i*ldw+2*rs+3]
		// G g: kernel rows combined, per kernel column.
		a0, a1, a2 := gRow(g[0], g[rs], g[2*rs])
		a3 := g[2*rs]
		b0, b1, b2 := gRow(g[1], g[rs+1], g[2*rs+1])
		b3 := g[2*rs+1]
		c0, c1, c2 := gRow(g[2], g[rs+2], g[2*rs+2])
		c3 := g[2*rs+2]
		// (G g) Gᵀ: each row's columns combined.
		u0[i], u1[i], u2[i] = gRow(a0, b0, c0)
		u3[i] = c0
		u4[i], u5[i], u6[i] = gRow(a1, b1, c1)
		u7[i] = c1
		u8[i], u9[i], u10[i] = gRow(a2, b2, c2)
		u11[i] = c2
		u12[i], u13[i], u14[i] = gRow(a3, b3, c3)
		u15[i] = c3
	}
}

// Turned returns the position of G g Gᵀ that holds position k of the
// transformed filter turned half a turn (g'[i][j] = g[2-i][2-j]), as the
// input gradient of a convolution reads it: G J = P G, where J reverses
// three rows and P swaps G's first and last (the middle two are
// symmetric), so G g' Gᵀ = P (G g Gᵀ) Pᵀ, a permutation of the 16
// positions that is its own inverse.
func Turned(k int) int {
	p := [4]int{3, 1, 2, 0}
	return 4*p[k/4] + p[k%4]
}

// gRow returns the first three values of G (a, b, c)ᵀ; the fourth is c.
func gRow(a, b, c float32) (float32, float32, float32) {
	return a, (a + b + c) * 0.5, (a - b + c) * 0.5
}

// InputRow transforms a row of n tiles: r0..r3 are the four input rows the
// tiles read, zero-padded, each at least 2n+2 long (tile t reads columns
// 2t..2t+3), and v[k*ldk + t] receives position k of tile t's Bᵀ d B.
func InputRow(v []float32, ldk int, r0, r1, r2, r3 []float32, n int) {
	if n <= 0 {
		return
	}
	done := inputRowVec(v, ldk, r0, r1, r2, r3, n)
	if done < n {
		inputRowGo(v[done:], ldk, r0[2*done:], r1[2*done:], r2[2*done:], r3[2*done:], n-done)
	}
}

// inputRowGo is InputRow in portable Go.
func inputRowGo(v []float32, ldk int, r0, r1, r2, r3 []float32, n int) {
	w := 2*n + 2
	r0, r1, r2, r3 = r0[:w], r1[:w], r2[:w], r3[:w]
	_ = v[15*ldk+n-1]
	// Column x of Bᵀ d: the rows' combinations, carried from one tile to
	// the next (tiles overlap by two columns).
	col := func(x int) (a, b, c, d float32) {
		return r0[x] - r2[x], r1[x] + r2[x], r2[x] - r1[x], r1[x] - r3[x]
	}
	a0, b0, c0, d0 := col(0)
	a1, b1, c1, d1 := col(1)
	for t := range n {
		x := 2 * t
		a2, b2, c2, d2 := col(x + 2)
		a3, b3, c3, d3 := col(x + 3)
		v[0*ldk+t] = a0 - a2
		v[1*ldk+t] = a1 + a2
		v[2*ldk+t] = a2 - a1
		v[3*ldk+t] = a1 - a3
		v[4*ldk+t] = b0 - b2
		v[5*ldk+t] = b1 + b2
		v[6*ldk+t] = b2 - b1
		v[7*ldk+t] = b1 - b3
		v[8*ldk+t] = c0 - c2
		v[9*ldk+t] = c1 + c2
		v[10*ldk+t] = c2 - c1
		v[11*ldk+t] = c1 - c3
		v[12*ldk+t] = d0 - d2
		v[13*ldk+t] = d1 + d2
		v[14*ldk+t] = d2 - d1
		v[15*ldk+t] = d1 - d3
		a0, b0, c0, d0 = a2, b2, c2, d2
		a1, b1, c1, d1 = a3, b3, c3, d3
	}
}

// OutputRow takes a row of n tiles out of the transformed domain: m[k*ldk
// + t] is position k of tile t, and tile t's Aᵀ m A goes to columns 2t and
// 2t+1 of y0 and y1 (y1 nil: the second row is cut off), of which only the
// first wo (≤ 2n) exist. With add the values are added to y's, else they
// replace them.
func OutputRow(y0, y1 []float32, wo int, m []float32, ldk int, n int, add bool) {
	if n <= 0 {
		return
	}
	done := outputRowVec(y0, y1, wo, m, ldk, n, add)
	if done < n {
		if y1 != nil {
			y1 = y1[2*done:]
		}
		outputRowGo(y0[2*done:], y1, wo-2*done, m[done:], ldk, n-done, add)
	}
}

// outputRowGo is OutputRow in portable Go.
func outputRowGo(y0, y1 []float32, wo int, m []float32, ldk int, n int, add bool) {
	_ = m[15*ldk+n-1]
	for t := range n {
		var s [2][4]float32 // Aᵀ m
		for j := range 4 {
			m0, m1, m2, m3 := m[j*ldk+t], m[(4+j)*ldk+t], m[(8+j)*ldk+t], m[(12+j)*ldk+t]
			s[0][j] = m0 + m1 + m2
			s[1][j] = m1 - m2 - m3
		}
		for i, y := range [2][]float32{y0, y1} {
			if y == nil {
				continue
			}
			r := s[i]
			v0, v1 := r[0]+r[1]+r[2], r[1]-r[2]-r[3]
			x := 2 * t
			if add {
				y[x] += v0
			} else {
				y[x] = v0
			}
			if x+1 < wo {
				if add {
					y[x+1] += v1
				} else {
					y[x+1] = v1
				}
			}
		}
	}
}
