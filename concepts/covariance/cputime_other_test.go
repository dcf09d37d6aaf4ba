//go:build !unix

package covariance

func cpuSeconds() float64 { return 0 }
