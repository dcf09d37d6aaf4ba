//go:build unix

package main

import (
	"syscall"
	"time"
)

// processCPU is the process's user plus system CPU time so far (0 when
// unknown), for bench --train: on a shared machine it shows the work a
// phase did where wall time also counts waiting for the cores.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
