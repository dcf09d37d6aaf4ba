package attention

// kernels are the inner loops of the tiled algorithm. The assembly set and
// the Go set compute the same things; tests compare them.
type kernels struct {
	name string

	// mr is how many rows panel computes: the tiles pad their row counts
	// to a multiple of it (see tiles.go).
	mr int

	// panel computes, for r < mr and j < n (n a multiple of 8),
	// c[r*ldc+j] = Σ_{p<k} a[r*rs+p*ps] · b[p*ldb+j], added to c when acc.
	// With rs = lda, ps = 1 it is a row-major A; with rs = 1, ps = lda it
	// reads A transposed.
	panel func(k int, a []float32, rs, ps int, b []float32, ldb int, c []float32, ldc, n int, acc bool)

	// softmaxRow is one online-softmax step on a row s of base-2 scores
	// (len a multiple of 8) of which the first n entries are valid: with
	// ml = {m, l} the running max and sum of the row, it sets
	// m' = max(m, max(s[:n])), s[j] = 2^(s[j] - m') for j < n and 0 beyond,
	// l' = l·2^(m - m') + Σ s, and rescales o by 2^(m - m').
	softmaxRow func(s []float32, n int, ml *[2]float32, o []float32)

	// expRow sets s[j] = 2^(s[j] - sub) for j < n and 0 for
	// n <= j < len(s) (len a multiple of 8).
	expRow func(s []float32, n int, sub float32)

	// dsRow sets dp[j] = p[j] · (dp[j] - d) (len a multiple of 8).
	dsRow func(p, dp []float32, d float32)

	// exp sets dst[i] = e^src[i]; exp2 sets dst[i] = 2^src[i] as the
	// softmax computes it.
	exp, exp2 func(dst, src []float32)
}

// goKernels is the portable set.
var goKernels = kernels{
	name:       "go",
	mr:         6,
	panel:      goPanel,
	softmaxRow: goSoftmaxRow,
	expRow:     goExpRow,
	dsRow:      goDSRow,
	exp:        goExp,
	exp2:       goExp2,
}

func goPanel(k int, a []float32, rs, ps int, b []float32, ldb int, c []float32, ldc, n int, acc bool) {
	panelRows(6, k, a, rs, ps, b, ldb, c, ldc, n, acc)
}

// panelRows is panel for m rows, in Go: the Go set's kernel, and the
// fallback of the assembly sets for arguments their code does not take.
func panelRows(m, k int, a []float32, rs, ps int, b []float32, ldb int, c []float32, ldc, n int, acc bool) {
	for r := 0; r < m; r++ {
		crow := c[r*ldc : r*ldc+n]
		if !acc {
			clear(crow)
		}
		for p := 0; p < k; p++ {
			av := a[r*rs+p*ps]
			brow := b[p*ldb : p*ldb+n]
			for j, bv := range brow {
				crow[j] += av * bv
			}
		}
	}
}

func goSoftmaxRow(s []float32, n int, ml *[2]float32, o []float32) {
	m := ml[0]
	mnew := m
	for _, x := range s[:n] {
		mnew = max(mnew, x)
	}
	if mnew < -maxFloat32 {
		clear(s)
		return
	}
	alpha := exp2f(m - mnew)
	var sum float32
	for j := range s {
		if j < n {
			e := exp2f(s[j] - mnew)
			s[j] = e
			sum += e
		} else {
			s[j] = 0
		}
	}
	ml[0], ml[1] = mnew, ml[1]*alpha+sum
	if alpha != 1 {
		for i := range o {
			o[i] *= alpha
		}
	}
}

func goExpRow(s []float32, n int, sub float32) {
	for j := range s {
		if j < n {
			s[j] = exp2f(s[j] - sub)
		} else {
			s[j] = 0
		}
	}
}

func goDSRow(p, dp []float32, d float32) {
	dp = dp[:len(p)]
	for j, pv := range p {
		dp[j] = pv * (dp[j] - d)
	}
}

const maxFloat32 = 3.40282346638528859811704183484516925440e+38
