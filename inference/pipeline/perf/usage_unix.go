//go:build unix

package perf

import (
	"syscall"
	"time"
)

// processTimes is the process's user and system CPU time and its minor
// and major page faults so far, from getrusage(RUSAGE_SELF).
func processTimes() (user, sys time.Duration, minor, major int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, -1, -1
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), int64(ru.Minflt), int64(ru.Majflt)
}
