package safetensors

import "syscall"

// adviseWillNeed asks Linux to read the mapped file ahead (a hint: a
// failure changes nothing).
func adviseWillNeed(b []byte) { _ = syscall.Madvise(b, syscall.MADV_WILLNEED) }
