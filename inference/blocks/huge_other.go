//go:build !linux

package blocks

// adviseHuge does nothing where transparent huge pages are not a Linux
// madvise away.
func adviseHuge([]float32) {}
