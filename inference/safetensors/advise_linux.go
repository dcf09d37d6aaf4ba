package safetensors

import (
	"syscall"

	"github.com/perfusion-studio/perfusion/inference/internal/hugepages"
)

// adviseWillNeed asks Linux to back the mapped file with huge pages where
// it can, then to read it ahead. Both are hints: a failure changes nothing.
//
// Where the file system caches files in large folios (ext4 and XFS on
// recent kernels), a file read from disk is mapped largely in 2 MiB pages,
// so a weight matrix is read through a few TLB entries instead of one per
// 4 KiB page: the GEMM, which widens float16 weights as it packs them,
// then spent 2.6x less time widening (see README, Benchmarks).
// MADV_HUGEPAGE asks readahead for such folios: on Linux 6.18 with ext4,
// 98-100% of a file read after it was so mapped, 91-94% without.
func adviseWillNeed(b []byte) {
	_ = syscall.Madvise(b, hugepages.MadvHugepage)
	_ = syscall.Madvise(b, syscall.MADV_WILLNEED)
}
