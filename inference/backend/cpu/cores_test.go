package cpu

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestPhysicalCores(t *testing.T) {
	root := t.TempDir()
	// Four logical CPUs on two cores (hyper-threads 0,2 and 1,3).
	for cpu, sib := range []string{"0,2", "1,3", "0,2", "1,3"} {
		dir := filepath.Join(root, "cpu"+string(rune('0'+cpu)), "topology")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "thread_siblings_list"), []byte(sib+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := physicalCores(root); got != 2 {
		t.Errorf("physicalCores = %d, want 2", got)
	}
	if got := physicalCores(filepath.Join(root, "missing")); got != 0 {
		t.Errorf("physicalCores(missing) = %d, want 0", got)
	}
}

func TestDefaultThreads(t *testing.T) {
	n := DefaultThreads()
	if n < 1 || n > runtime.GOMAXPROCS(0) {
		t.Errorf("DefaultThreads = %d, want 1..GOMAXPROCS (%d)", n, runtime.GOMAXPROCS(0))
	}
}
