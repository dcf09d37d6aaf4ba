// Package blas binds the platform BLAS single-precision GEMM through cgo:
// OpenBLAS on Linux (Debian's libopenblas-dev, header cblas.h under
// /usr/include/x86_64-linux-gnu) and Accelerate on macOS.
//
// It is compiled only with cgo, on Linux or macOS, without the purego tag;
// otherwise the stub in nocgo.go reports Available == false and Sgemm
// panics. All matrices are row-major, as in backend.Backend.Gemm.
package blas
