// Package x86 reports the x86-64 instruction-set extensions our assembly
// kernels need, read once from CPUID (and XGETBV for the OS's saving of the
// YMM registers). On other architectures every feature reads false.
package x86
