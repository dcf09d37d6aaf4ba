//go:build !amd64

package vmath

var hasAVX2 = false // a var so that tests can toggle it on every platform

func expVec(dst, x []float32) int                    { return 0 }
func sigmoidVec(dst, x []float32, alpha float32) int { return 0 }
func phiVec(dst, x []float32) int                    { return 0 }
func gegluGradVec(da, dg, a, g, dy []float32) int    { return 0 }
