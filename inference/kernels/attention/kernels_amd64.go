//go:build amd64 && !purego

package attention

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// Assembly in kernels_amd64.s.

//go:noescape
func panelAVX(k int, a *float32, rs, ps int, b *float32, ldb int, c *float32, ldc, n, acc int)

//go:noescape
func softmaxRowAVX(s *float32, n, npad int, ml *[2]float32, o *float32, no int)

//go:noescape
func expRowAVX(s *float32, n, npad int, sub float32)

//go:noescape
func dsRowAVX(p, dp *float32, n int, d float32)

//go:noescape
func expAVX(dst, src *float32, n int)

//go:noescape
func exp2AVX(dst, src *float32, n int)

// avxKernels is the AVX2 set; the wrappers check bounds so that a caller's
// mistake panics instead of corrupting memory.
var avxKernels = kernels{
	name:       "avx2",
	mr:         6,
	panel:      avxPanel,
	softmaxRow: avxSoftmaxRow,
	expRow:     avxExpRow,
	dsRow:      avxDSRow,
	exp:        avxExp,
	exp2:       avxExp2,
}

// haveAVX and haveAVX512 are fixed at start-up.
var (
	haveAVX    = x86.HasAVX2FMA()
	haveAVX512 = x86.HasAVX512()
)

// pick returns the kernels for this machine: the last of available.
func pick() kernels {
	sets := available()
	return sets[len(sets)-1]
}

// available lists the kernel sets this machine runs, slowest first: the Go
// set always, the AVX2 set where the CPU has AVX2 and FMA, the AVX-512 set
// where it has AVX512F too. Tests run each.
func available() []kernels {
	sets := []kernels{goKernels}
	if haveAVX {
		sets = append(sets, avxKernels)
	}
	if haveAVX512 {
		sets = append(sets, avx512Kernels)
	}
	return sets
}

func avxPanel(k int, a []float32, rs, ps int, b []float32, ldb int, c []float32, ldc, n int, acc bool) {
	if k < 1 || n < 1 || n%8 != 0 || rs < 0 || ps < 0 || ldb < 0 || ldc < 0 {
		goPanel(k, a, rs, ps, b, ldb, c, ldc, n, acc)
		return
	}
	panelInRange(6, k, a, rs, ps, b, ldb, c, ldc, n)
	ac := 0
	if acc {
		ac = 1
	}
	panelAVX(k, &a[0], rs, ps, &b[0], ldb, &c[0], ldc, n, ac)
}

// panelInRange panics unless the m-row panel's operands lie inside a, b
// and c; k, n >= 1 and strides >= 0.
func panelInRange(m, k int, a []float32, rs, ps int, b []float32, ldb int, c []float32, ldc, n int) {
	if (m-1)*rs+(k-1)*ps >= len(a) || (k-1)*ldb+n > len(b) || (m-1)*ldc+n > len(c) {
		panic("attention: panel operands out of range")
	}
}

func avxSoftmaxRow(s []float32, n int, ml *[2]float32, o []float32) {
	if len(s)%8 != 0 || len(o)%8 != 0 || n < 0 || n > len(s) || len(s) == 0 {
		goSoftmaxRow(s, n, ml, o)
		return
	}
	op := (*float32)(nil)
	if len(o) > 0 {
		op = &o[0]
	}
	softmaxRowAVX(&s[0], n, len(s), ml, op, len(o))
}

func avxExpRow(s []float32, n int, sub float32) {
	if len(s)%8 != 0 || n < 0 || n > len(s) || len(s) == 0 {
		goExpRow(s, n, sub)
		return
	}
	expRowAVX(&s[0], n, len(s), sub)
}

func avxDSRow(p, dp []float32, d float32) {
	if len(p)%8 != 0 || len(dp) < len(p) || len(p) == 0 {
		goDSRow(p, dp, d)
		return
	}
	dsRowAVX(&p[0], &dp[0], len(p), d)
}

func avxExp(dst, src []float32) {
	if len(src) == 0 {
		return
	}
	dst = dst[:len(src)]
	expAVX(&dst[0], &src[0], len(src))
}

func avxExp2(dst, src []float32) {
	if len(src) == 0 {
		return
	}
	dst = dst[:len(src)]
	exp2AVX(&dst[0], &src[0], len(src))
}
