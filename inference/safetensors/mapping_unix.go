//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package safetensors

import (
	"os"
	"syscall"
)

// mmapFile maps the first size bytes of f read-only and shared (the pages
// are the page cache's: no copy, and several processes share them).
// It asks the system to read the file ahead (MADV_WILLNEED), so that a
// file not in the page cache is read in large sequential chunks while the
// loaders convert the tensors they copy, not page by page on first use.
func mmapFile(f *os.File, size int) ([]byte, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err == nil {
		adviseWillNeed(b)
	}
	return b, err
}

func munmapFile(b []byte) { _ = syscall.Munmap(b) }
