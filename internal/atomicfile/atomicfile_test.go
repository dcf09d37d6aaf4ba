//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.txt")
	if err := WriteFile(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	if err := WriteFile(path, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "two" {
		t.Fatalf("read back %q, %v", b, err)
	}
	// A replaced file keeps its mode; a new one gets 0666 less the umask.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("replaced file mode %v, want 0640", st.Mode().Perm())
	}
	fresh := filepath.Join(dir, "b.txt")
	if err := WriteFile(fresh, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o644 {
		t.Errorf("new file mode %v, want 0644 under umask 022", st.Mode().Perm())
	}
	// No temporary file is left, and a missing folder is an error.
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("folder holds %d entries, want 2", len(ents))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "c.txt"), nil); err == nil {
		t.Error("writing into a missing folder succeeded")
	}
}
