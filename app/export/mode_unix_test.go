//go:build unix

package export

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFileModes: new files get 0666 less the umask; a replaced file keeps
// its mode, wider or narrower than the umask would give.
func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	mode := func(p string) os.FileMode {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	save := func(p string) {
		if err := SavePNG(p, testImage(), Settings{Prompt: "x", Steps: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o077, 0o600}, {0o002, 0o664}} {
		syscall.Umask(c.umask)
		p := filepath.Join(dir, "new.png")
		os.Remove(p)
		save(p)
		if got := mode(p); got != c.want {
			t.Errorf("umask %03o: new file mode %03o, want %03o", c.umask, got, c.want)
		}
	}
	syscall.Umask(0o077)
	for _, keep := range []os.FileMode{0o644, 0o640, 0o600, 0o664} {
		p := filepath.Join(dir, "existing.png")
		if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, keep); err != nil {
			t.Fatal(err)
		}
		save(p)
		if got := mode(p); got != keep {
			t.Errorf("existing %03o file became %03o", keep, got)
		}
	}
}
