package evaldefault

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
)

// skipOrFail skips the test with msg, or fails it under CI (CI=true),
// where the data and the model must be there.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (required under CI=true)", msg)
	}
	t.Skipf("skipped: %s", msg)
}

var dataSet = sync.OnceValues(func() (*emoji.Set, error) {
	return emoji.Build(context.Background(), emoji.DefaultPaths(), 64, nil)
})

// testSet renders the data set once per test binary (about 2 s), or
// skips (fails under CI) when the Debian data packages are missing.
func testSet(t *testing.T) *emoji.Set {
	t.Helper()
	if miss := emoji.DefaultPaths().Missing(); len(miss) > 0 {
		skipOrFail(t, strings.Join(miss, ", ")+" absent: install fonts-noto-color-emoji, unicode-data and unicode-cldr-core (make test does)")
	}
	set, err := dataSet()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// modelDir finds the trained default model: $PERFUSION_DEFAULT_MODEL, or
// assets/defaultmodel at the module root. It skips (fails under CI) when
// there is none.
func modelDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("PERFUSION_DEFAULT_MODEL"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
	m := filepath.Join(dir, "assets", "defaultmodel")
	if _, err := os.Stat(filepath.Join(m, "model_index.json")); err != nil {
		skipOrFail(t, "no trained default model at "+m+" (make default-model makes it; PERFUSION_DEFAULT_MODEL names another folder)")
	}
	return m
}
