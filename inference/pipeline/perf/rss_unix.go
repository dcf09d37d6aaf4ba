//go:build unix && !linux

package perf

import (
	"fmt"
	"runtime"
	"syscall"
)

// PeakRSS is the process's peak resident set size in bytes, from
// getrusage(RUSAGE_SELF).ru_maxrss (bytes on macOS, kilobytes elsewhere).
func PeakRSS() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("perf: peak RSS: %w", err)
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss), nil
	}
	return int64(ru.Maxrss) << 10, nil
}

// ResetPeakRSS is not possible here: getrusage's peak only grows.
func ResetPeakRSS() error {
	return fmt.Errorf("perf: resetting the peak RSS is not possible on %s", runtime.GOOS)
}
