package ui

import (
	"path/filepath"
	"slices"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
)

// Dropping a PNG that carries its concepts restores the composition and
// brings the concepts into the library; a clash gets a free name that the
// prompt follows.
func TestDropPNGWithConcepts(t *testing.T) {
	src, err := app.OpenStudio(app.Options{ConfigDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	conceptstest.WriteSmall(t, src.Concepts.Dir(), "tubby", "cat", "abc")
	c := src.Concepts.Sync(export.Composition{Prompt: "a <tubby> at sea", Seed: 4, Steps: 9, CFG: 6, Sampler: "ddim", Width: 512, Height: 512})
	path := filepath.Join(t.TempDir(), "sea.png")
	if err := src.ExportPNG(path, test.NewWindow(nil).Canvas().Capture(), c, app.ExportOptions{Concepts: true}); err != nil {
		t.Fatal(err)
	}

	s := newStudioWindow(t, Options{}, app.Options{})
	conceptstest.WriteSmall(t, s.studio.Concepts.Dir(), "tubby", "dog", "other")
	s.m.onDropped(fyne.NewPos(1, 1), []fyne.URI{storage.NewFileURI(path)})
	s.q.pumpUntil(t, "restored prompt", func() bool { return s.m.composer.prompt.Text == "a <tubby-2> at sea" })
	list, err := s.studio.Concepts.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
	}
	if !slices.Equal(names, []string{"tubby", "tubby-2"}) {
		t.Fatalf("library %v, want tubby and the imported tubby-2", names)
	}
	got, err := s.m.composer.composition()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Concepts) != 1 || got.Concepts[0].Name != "tubby-2" || got.Seed != 4 {
		t.Fatalf("composer shows %+v", got)
	}
}
