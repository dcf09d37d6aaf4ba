package cpu

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// DefaultThreads is the default number of worker threads: the number of
// physical cores the process may use. Two hyper-threads of one core share
// its FMA units, so a second GEMM thread there only adds contention. Where
// the topology cannot be read it is runtime.GOMAXPROCS(0), which already
// honours CPU affinity and cgroup quotas.
func DefaultThreads() int {
	n := runtime.GOMAXPROCS(0)
	if cores := physicalCores("/sys/devices/system/cpu"); cores > 0 {
		n = min(n, cores)
	}
	return max(n, 1)
}

// physicalCores counts the distinct cores of the online CPUs described under
// a Linux sysfs cpu folder (their thread_siblings_list sets); 0 when it
// cannot tell.
func physicalCores(root string) int {
	lists, err := filepath.Glob(filepath.Join(root, "cpu[0-9]*", "topology", "thread_siblings_list"))
	if err != nil || len(lists) == 0 {
		return 0
	}
	cores := make(map[string]bool)
	for _, p := range lists {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0
		}
		cores[strings.TrimSpace(string(b))] = true
	}
	return len(cores)
}
