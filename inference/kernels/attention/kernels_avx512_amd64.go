//go:build amd64 && !purego

package attention

// Assembly in kernels_avx512_amd64.s.

//go:noescape
func panel512(k int, a *float32, rs, ps int, b *float32, ldb int, c *float32, ldc, n, acc int)

//go:noescape
func softmaxRow512(s *float32, n, npad int, ml *[2]float32, o *float32, no int)

//go:noescape
func expRow512(s *float32, n, npad int, sub float32)

//go:noescape
func dsRow512(p, dp *float32, n int, d float32)

//go:noescape
func exp512(dst, src *float32, n int)

//go:noescape
func exp2_512(dst, src *float32, n int)

// avx512Kernels is the AVX-512 set: an 8-row product kernel over 48-column
// blocks of ZMM registers (24 accumulators), with the 8 columns past a
// multiple of 16 computed for two rows in one register (so a head of 40
// wastes no lanes), and row kernels 16 lanes at a time with masked tails.
// Its wrappers check bounds like the AVX2 set's.
var avx512Kernels = kernels{
	name:       "avx512",
	mr:         8,
	panel:      panelAVX512,
	softmaxRow: softmaxRowAVX512,
	expRow:     expRowAVX512,
	dsRow:      dsRowAVX512,
	exp:        expAVX512,
	exp2:       exp2AVX512,
}

func panelAVX512(k int, a []float32, rs, ps int, b []float32, ldb int, c []float32, ldc, n int, acc bool) {
	if k < 1 || n < 1 || n%8 != 0 || rs < 0 || ps < 0 || ldb < 0 || ldc < 0 {
		panelRows(8, k, a, rs, ps, b, ldb, c, ldc, n, acc)
		return
	}
	panelInRange(8, k, a, rs, ps, b, ldb, c, ldc, n)
	ac := 0
	if acc {
		ac = 1
	}
	panel512(k, &a[0], rs, ps, &b[0], ldb, &c[0], ldc, n, ac)
}

func softmaxRowAVX512(s []float32, n int, ml *[2]float32, o []float32) {
	if len(s)%8 != 0 || len(o)%8 != 0 || n < 0 || n > len(s) || len(s) == 0 {
		goSoftmaxRow(s, n, ml, o)
		return
	}
	op := (*float32)(nil)
	if len(o) > 0 {
		op = &o[0]
	}
	softmaxRow512(&s[0], n, len(s), ml, op, len(o))
}

func expRowAVX512(s []float32, n int, sub float32) {
	if len(s)%8 != 0 || n < 0 || n > len(s) || len(s) == 0 {
		goExpRow(s, n, sub)
		return
	}
	expRow512(&s[0], n, len(s), sub)
}

func dsRowAVX512(p, dp []float32, d float32) {
	if len(p)%8 != 0 || len(dp) < len(p) || len(p) == 0 {
		goDSRow(p, dp, d)
		return
	}
	dsRow512(&p[0], &dp[0], len(p), d)
}

func expAVX512(dst, src []float32) {
	if len(src) == 0 {
		return
	}
	dst = dst[:len(src)]
	exp512(&dst[0], &src[0], len(src))
}

func exp2AVX512(dst, src []float32) {
	if len(src) == 0 {
		return
	}
	dst = dst[:len(src)]
	exp2_512(&dst[0], &src[0], len(src))
}
