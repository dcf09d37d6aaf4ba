package app

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoFyneWidgets keeps the services free of UI code: app and its
// sub-packages import neither Fyne's widgets, windows and app driver nor the
// ui package, so they are tested without a display.
func TestNoFyneWidgets(t *testing.T) {
	forbidden := []string{
		"fyne.io/fyne/v2/app",
		"fyne.io/fyne/v2/widget",
		"fyne.io/fyne/v2/container",
		"fyne.io/fyne/v2/dialog",
		"fyne.io/fyne/v2/canvas",
		"fyne.io/fyne/v2/layout",
		"github.com/sqweek/dialog",
		"github.com/perfusion-studio/perfusion/ui",
	}
	files := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, spec := range f.Imports {
			imp, _ := strconv.Unquote(spec.Path.Value)
			for _, bad := range forbidden {
				if imp == bad || strings.HasPrefix(imp, bad+"/") {
					t.Errorf("%s imports %s; app must not depend on UI code", path, imp)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("found no Go files to check")
	}
}
