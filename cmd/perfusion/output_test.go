package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

// TestGenerateRefusesModelAsOutput: --out naming a file the model is read
// from (here through a symbolic link) is refused before generating, and
// the file is left intact.
func TestGenerateRefusesModelAsOutput(t *testing.T) {
	src := golden.Path(t, "tiny_diffusers")
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	// A copy of the folder whose unet/config.json is our own file (the
	// golden one must never be at risk); the rest are links.
	if err := os.MkdirAll(filepath.Join(model, "unet"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "unet" {
			if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(model, e.Name())); err != nil {
				t.Skip("no symlinks:", err)
			}
		}
	}
	if err := os.Symlink(filepath.Join(src, "unet", "diffusion_pytorch_model.safetensors"), filepath.Join(model, "unet", "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(src, "unet", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(model, "unet", "config.json")
	if err := os.WriteFile(target, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.png")
	if err := os.Symlink(target, out); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err = runGenerate(context.Background(), []string{"--model", model, "--prompt", "a cat", "--steps", "1", "--out", out}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "a file the model was loaded from") || strings.Contains(stderr.String(), "step 1/") {
		t.Errorf("got %v (stderr %q), want a refusal before generating", err, stderr.String())
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, cfg) {
		t.Error("the model's config.json was overwritten")
	}
}
