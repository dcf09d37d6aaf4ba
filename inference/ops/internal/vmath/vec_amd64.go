package vmath

import "github.com/perfusion-studio/perfusion/inference/internal/x86"

// hasAVX2 is set once at init from CPUID and never changed.
var hasAVX2 = x86.HasAVX2FMA()

// The kernels below are in vec_amd64.s; n must be a multiple of 8.

//go:noescape
func expAVX2(dst, src *float32, n int)

//go:noescape
func sigmoidAVX2(dst, src *float32, n int, negAlpha float32)

//go:noescape
func phiAVX2(dst, src *float32, n int)

//go:noescape
func gegluGradAVX2(da, dg, a, gate, dy *float32, n int)

func expVec(dst, x []float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	_ = dst[n-1]
	expAVX2(&dst[0], &x[0], n)
	return n
}

func sigmoidVec(dst, x []float32, alpha float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	_ = dst[n-1]
	sigmoidAVX2(&dst[0], &x[0], n, -alpha)
	return n
}

func phiVec(dst, x []float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	_ = dst[n-1]
	phiAVX2(&dst[0], &x[0], n)
	return n
}

func gegluGradVec(da, dg, a, g, dy []float32) int {
	n := len(g) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	_, _, _, _ = da[n-1], dg[n-1], a[n-1], dy[n-1]
	gegluGradAVX2(&da[0], &dg[0], &a[0], &g[0], &dy[0], n)
	return n
}
