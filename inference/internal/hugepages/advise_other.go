//go:build !linux

package hugepages

// Advise does nothing where transparent huge pages are not a Linux
// madvise away.
func Advise([]float32) {}
