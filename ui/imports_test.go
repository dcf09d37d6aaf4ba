package ui

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayering keeps ui a pure screen package: it talks to the app services
// only, never to the model code, and never starts the app or opens native
// dialogs (so every screen stays testable headless).
func TestLayering(t *testing.T) {
	forbidden := []string{
		"fyne.io/fyne/v2/app",
		"github.com/sqweek/dialog",
		"github.com/perfusion-studio/perfusion/inference",
		"github.com/perfusion-studio/perfusion/concepts",
	}
	for file, imports := range packageImports(t, ".") {
		for _, imp := range imports {
			for _, bad := range forbidden {
				if imp == bad || strings.HasPrefix(imp, bad+"/") {
					t.Errorf("%s imports %s; ui may use only app and Fyne's widgets", file, imp)
				}
			}
		}
	}
}

// packageImports returns the import paths of each .go file under dir.
func packageImports(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, spec := range f.Imports {
			p, _ := strconv.Unquote(spec.Path.Value)
			out[path] = append(out[path], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no Go files with imports under %s", dir)
	}
	return out
}
