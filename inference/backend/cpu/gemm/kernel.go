package gemm

// A micro-kernel multiplies one packed MR×kc panel of A by one packed kc×NR
// panel of B and writes the MR×NR tile to C:
//
//	C[r][c] = alpha * sum_p a[p*MR+r] * b[p*NR+c]  (+ beta*C[r][c] if loadC)
//
// c starts at the tile's top-left element and ldc is C's row stride. When
// loadC is false C is only written, so garbage (NaN) in it is ignored.
type kernelFunc func(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool)

// kernel describes one micro-kernel and the blocking tuned for it.
type kernel struct {
	name   string
	mr, nr int // register tile: rows of A, columns of B
	mc, kc int // A block [mc, kc] kept in L2 (mc a multiple of mr)
	nc     int // B panel [kc, nc] kept in L3 (nc a multiple of nr)
	fn     kernelFunc
}

// goKernel is the portable kernel: a 4×4 tile whose 16 accumulators stay in
// registers on every 64-bit target Go supports.
var goKernel = kernel{name: "go4x4", mr: 4, nr: 4, mc: 128, kc: 256, nc: 2048, fn: kern4x4}

func kern4x4(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	a = a[:4*kc]
	b = b[:4*kc]
	for p := 0; p+4 <= len(a); p += 4 {
		ap := a[p : p+4 : p+4]
		bp := b[p : p+4 : p+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	store4(c[0:4:4], c00, c01, c02, c03, alpha, beta, loadC)
	store4(c[ldc:ldc+4:ldc+4], c10, c11, c12, c13, alpha, beta, loadC)
	store4(c[2*ldc:2*ldc+4:2*ldc+4], c20, c21, c22, c23, alpha, beta, loadC)
	store4(c[3*ldc:3*ldc+4:3*ldc+4], c30, c31, c32, c33, alpha, beta, loadC)
}

func store4(row []float32, v0, v1, v2, v3, alpha, beta float32, loadC bool) {
	if loadC {
		row[0] = alpha*v0 + beta*row[0]
		row[1] = alpha*v1 + beta*row[1]
		row[2] = alpha*v2 + beta*row[2]
		row[3] = alpha*v3 + beta*row[3]
		return
	}
	row[0] = alpha * v0
	row[1] = alpha * v1
	row[2] = alpha * v2
	row[3] = alpha * v3
}
