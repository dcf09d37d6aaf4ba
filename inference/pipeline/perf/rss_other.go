//go:build !unix

package perf

import (
	"errors"
	"runtime"
)

// PeakRSS is not measured on this system.
func PeakRSS() (int64, error) {
	return 0, errors.New("perf: peak RSS is not available on " + runtime.GOOS)
}

// ResetPeakRSS is not possible on this system.
func ResetPeakRSS() error {
	return errors.New("perf: resetting the peak RSS is not possible on " + runtime.GOOS)
}
