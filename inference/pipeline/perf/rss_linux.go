package perf

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PeakRSS is the process's peak resident set size in bytes: VmHWM of
// /proc/self/status (the high-water mark of resident memory).
func PeakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("perf: peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("perf: peak RSS: unexpected VmHWM line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("perf: peak RSS: %w", err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("perf: peak RSS: %w", err)
	}
	return 0, fmt.Errorf("perf: peak RSS: no VmHWM in /proc/self/status")
}

// ResetPeakRSS sets the peak resident set size back to the current one
// (writes 5 to /proc/self/clear_refs, Linux 4.0 on), so that PeakRSS
// measures the stages that follow.
func ResetPeakRSS() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("perf: reset peak RSS: %w", err)
	}
	return nil
}
