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
	n, err := procKB("/proc/self/status", "VmHWM:")
	if err != nil {
		return 0, fmt.Errorf("perf: peak RSS: %w", err)
	}
	return n, nil
}

// procKB reads the "key value kB" line of a /proc file, in bytes.
func procKB(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), key)
		if !ok {
			continue
		}
		fs := strings.Fields(rest) // "123456 kB"
		if len(fs) != 2 || fs[1] != "kB" {
			return 0, fmt.Errorf("unexpected line %q in %s", sc.Text(), path)
		}
		kb, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s line in %s", strings.TrimSuffix(key, ":"), path)
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
