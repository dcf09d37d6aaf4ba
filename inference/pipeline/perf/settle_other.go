//go:build !linux

package perf

import "errors"

// Settle does nothing here: page-cache folio sizes are Linux's concern.
func Settle(path string) error { return nil }

// FileHugeMapped reports that this system does not say.
func FileHugeMapped() (int64, error) {
	return 0, errors.New("perf: huge-page mappings: not reported on this system")
}
