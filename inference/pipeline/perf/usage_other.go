//go:build !unix

package perf

import "time"

// processTimes is not measured on this system (all unknown).
func processTimes() (user, sys time.Duration, minor, major int64) { return 0, 0, -1, -1 }
