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
