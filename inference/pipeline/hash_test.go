package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestModelHash(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3<<20+17) // several chunks and a partial one
	for i := range data {
		data[i] = byte(i * 7)
	}
	path := filepath.Join(dir, "m.safetensors")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	got, err := ModelHash(context.Background(), path)
	if want := hex.EncodeToString(sum[:])[:10]; err != nil || got != want {
		t.Errorf("ModelHash = %q, %v; want %q", got, err, want)
	}
	if got, err := ModelHash(context.Background(), dir); got != "" || err != nil {
		t.Errorf("ModelHash(folder) = %q, %v; want none", got, err)
	}
	if _, err := ModelHash(context.Background(), filepath.Join(dir, "absent")); err == nil {
		t.Error("ModelHash of a missing file succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ModelHash(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ModelHash = %v", err)
	}
}
