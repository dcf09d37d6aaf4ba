package safetensors_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// TestGoldenFilesValidate opens every golden safetensors file with the strict
// reader and converts every tensor: files written by the reference tools
// must pass all layout checks.
func TestGoldenFilesValidate(t *testing.T) {
	dir := golden.Dir(t)
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".safetensors") {
			return err
		}
		n++
		f, err := safetensors.Open(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer f.Close()
		for _, name := range f.Names() {
			if _, _, err := f.Float64(name); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walk %s: %v (%d files)", dir, err, n)
	}
}
