//go:build unix

package pipeline

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFIFOModel: a FIFO given as the model is refused at once by Load and
// by ModelHash (which generate runs beside it), instead of blocking.
func TestFIFOModel(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "model.safetensors")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 2)
	go func() { _, err := Load(context.Background(), fifo, LoadOptions{}); done <- err }()
	go func() { _, err := ModelHash(context.Background(), fifo); done <- err }()
	for range 2 {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "named pipe") {
				t.Errorf("got %v, want a named-pipe error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("blocked on a FIFO")
		}
	}
}
