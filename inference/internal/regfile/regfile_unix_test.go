//go:build unix

package regfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRefusesSpecialFiles opens a FIFO, a folder and /dev/zero: each must
// be refused at once, not block or read without end.
func TestRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.safetensors")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	cases := map[string]string{fifo: "named pipe", dir: "folder", "/dev/zero": "device"}
	for path, want := range cases {
		done := make(chan error, 1)
		go func() {
			f, _, err := Open(path)
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: got %v, want an error saying %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Open blocked", path)
		}
	}
}

func TestOpensRegularFilesAndLinks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.bin")
	if err := os.WriteFile(p, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.bin")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, link} {
		f, n, err := Open(path)
		if err != nil || n != 5 {
			t.Fatalf("%s: %v, size %d", path, err, n)
		}
		b := make([]byte, 5)
		if _, err := f.ReadAt(b, 0); err != nil || string(b) != "12345" {
			t.Errorf("%s: read %q %v", path, b, err)
		}
		f.Close()
	}
	if _, _, err := Open(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
