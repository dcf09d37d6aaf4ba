//go:build unix

package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpecialFiles: a FIFO as the weights or as a config.json is refused at
// once instead of blocking.
func TestSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.safetensors")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	folder := filepath.Join(dir, "pipe")
	diffusersParts(t, folder, "vae")
	if err := syscall.Mkfifo(filepath.Join(folder, "unet", "config.json"), 0o600); err != nil {
		if err := os.MkdirAll(filepath.Join(folder, "unet"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(folder, "unet", "config.json"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{fifo, folder} {
		done := make(chan error, 1)
		go func() { _, err := Open(p); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "named pipe") || !errors.Is(err, ErrFormat) {
				t.Errorf("%s: %v", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Open blocked", p)
		}
	}
}
