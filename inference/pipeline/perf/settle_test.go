package perf

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Settling a file leaves its contents as they were, and a missing file is
// an error that names it.
func TestSettle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.bin")
	want := bytes.Repeat([]byte("perfusion"), 1<<16)
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Settle(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("after Settle the file reads back %d bytes (want %d, same content: %v), %v", len(got), len(want), bytes.Equal(got, want), err)
	}
	if err := Settle(path + ".missing"); err == nil && runtime.GOOS == "linux" {
		t.Error("Settle of a missing file: no error")
	}
}

// On Linux the huge-page share of file mappings is read, and it is never
// more than the process's resident memory.
func TestFileHugeMapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("FilePmdMapped is Linux's")
	}
	n, err := FileHugeMapped()
	if err != nil {
		t.Fatal(err)
	}
	rss, err := PeakRSS()
	if n < 0 || (err == nil && n > rss) {
		t.Errorf("file mappings in 2 MiB pages: %d bytes, peak RSS %d", n, rss)
	}
}
