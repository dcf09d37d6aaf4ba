package app

import (
	"bytes"
	"errors"
	"image"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
)

func openLibraryStudio(t *testing.T) *Studio {
	t.Helper()
	s, err := OpenStudio(Options{ConfigDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func conceptNames(t *testing.T, s *Studio) []string {
	t.Helper()
	list, err := s.Concepts.List()
	if err != nil {
		t.Fatal(err)
	}
	return names(list)
}

func TestExportConceptsRoundTrip(t *testing.T) {
	src := openLibraryStudio(t)
	conceptstest.WriteSmall(t, src.Concepts.Dir(), "tubby", "cat", "abc")
	conceptstest.WriteSmall(t, src.Concepts.Dir(), "unused", "dog", "abc")
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	c := export.Composition{Prompt: "a <tubby> on a hill", Negative: "blurry <Tubby>", Seed: 3, Steps: 4, CFG: 7,
		Sampler: "euler_a", Width: 8, Height: 8}
	c = src.Concepts.Stamp(src.Concepts.Sync(c))
	if len(c.Concepts) != 1 || c.Concepts[0].Hash == "" {
		t.Fatalf("composition concepts %+v", c.Concepts)
	}
	dir := t.TempDir()
	with, without := filepath.Join(dir, "with.png"), filepath.Join(dir, "without.png")
	if err := src.ExportPNG(with, img, c, ExportOptions{Concepts: true}); err != nil {
		t.Fatal(err)
	}
	if err := src.ExportPNG(without, img, c, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(with)
	b, _ := os.ReadFile(without)
	if len(a) <= len(b) {
		t.Fatalf("PNG with concepts %d bytes, without %d", len(a), len(b))
	}
	if !src.ExportOptions().Concepts {
		t.Error("concepts are not embedded by default")
	}

	// A fresh installation gets the concept and the same composition.
	dst := openLibraryStudio(t)
	got, err := dst.ImportPNG(with)
	if err != nil {
		t.Fatal(err)
	}
	want := c
	want.Version = export.CompositionVersion
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("imported %+v\nwant %+v", got, want)
	}
	if n := conceptNames(t, dst); !slices.Equal(n, []string{"tubby"}) {
		t.Fatalf("library after import: %v", n)
	}
	orig, _ := os.ReadFile(filepath.Join(src.Concepts.Dir(), "tubby.concept"))
	copied, _ := os.ReadFile(filepath.Join(dst.Concepts.Dir(), "tubby.concept"))
	if !bytes.Equal(orig, copied) {
		t.Error("imported concept file differs from the exported one")
	}
	// Importing again reuses it (same content).
	if again, err := dst.ImportPNG(with); err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("second import %+v, %v", again, err)
	}
	if n := conceptNames(t, dst); !slices.Equal(n, []string{"tubby"}) {
		t.Fatalf("library after a second import: %v", n)
	}
	// Without concepts in the PNG the library is left alone.
	other := openLibraryStudio(t)
	if got, err := other.ImportPNG(without); err != nil || got.Concepts[0].Name != "tubby" {
		t.Fatalf("import without concepts: %+v, %v", got, err)
	}
	if n := conceptNames(t, other); len(n) != 0 {
		t.Fatalf("library after importing a PNG without concepts: %v", n)
	}
}

func TestImportConceptsNameClash(t *testing.T) {
	src := openLibraryStudio(t)
	conceptstest.WriteSmall(t, src.Concepts.Dir(), "tubby", "cat", "abc")
	conceptstest.WriteSmall(t, src.Concepts.Dir(), "tubby-2", "cat", "xyz")
	c := export.Composition{Prompt: "<tubby> and <tubby-2>", Steps: 4, CFG: 7, Sampler: "euler_a", Width: 8, Height: 8}
	c = src.Concepts.Stamp(src.Concepts.Sync(c))
	path := filepath.Join(t.TempDir(), "x.png")
	if err := src.ExportPNG(path, image.NewRGBA(image.Rect(0, 0, 8, 8)), c, ExportOptions{Concepts: true}); err != nil {
		t.Fatal(err)
	}
	// The destination has another "tubby": the embedded one gets a free
	// name, the embedded tubby-2 then too, and the prompt's renames
	// happen at once (the new <tubby-2> is not renamed again).
	dst := openLibraryStudio(t)
	conceptstest.WriteSmall(t, dst.Concepts.Dir(), "tubby", "dog", "other")
	got, err := dst.ImportPNG(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := conceptNames(t, dst); !slices.Equal(n, []string{"tubby", "tubby-2", "tubby-2-2"}) {
		t.Fatalf("library: %v", n)
	}
	if got.Prompt != "<tubby-2> and <tubby-2-2>" {
		t.Errorf("prompt %q", got.Prompt)
	}
	if len(got.Concepts) != 2 || got.Concepts[0].Name != "tubby-2" || got.Concepts[1].Name != "tubby-2-2" {
		t.Fatalf("concepts %+v", got.Concepts)
	}
	for _, u := range got.Concepts {
		f, err := dst.Concepts.file(u.Name)
		if err != nil || f.hash != u.Hash || f.file.Name != u.Name {
			t.Errorf("concept %s: hash %s, library file %+v, %v", u.Name, u.Hash, f, err)
		}
	}
	if f, _ := dst.Concepts.file("tubby-2"); f.file.Superclass != "cat" || f.file.BaseModel != "abc" {
		t.Errorf("tubby-2 is not the embedded tubby: %+v", f.file.Header)
	}
	if f, _ := dst.Concepts.file("tubby-2-2"); f.file.BaseModel != "xyz" {
		t.Errorf("tubby-2-2 is not the embedded tubby-2: %+v", f.file.Header)
	}
	if f, _ := dst.Concepts.file("tubby"); f.file.Superclass != "dog" {
		t.Error("the library's own tubby changed")
	}
}

func TestImportPNGErrors(t *testing.T) {
	src := openLibraryStudio(t)
	conceptstest.WriteSmall(t, src.Concepts.Dir(), "tubby", "cat", "abc")
	c := export.Composition{Prompt: "<tubby>", Steps: 4, CFG: 7, Sampler: "euler_a", Width: 8, Height: 8}
	c = src.Concepts.Sync(c)
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	dir := t.TempDir()
	path := filepath.Join(dir, "x.png")
	if err := src.ExportPNG(path, img, c, ExportOptions{Concepts: true}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	i := bytes.Index(data, []byte(export.ConceptChunk))
	data[i+20] ^= 0x55
	bad := filepath.Join(dir, "bad.png")
	os.WriteFile(bad, data, 0o644)
	dst := openLibraryStudio(t)
	if _, err := dst.ImportPNG(bad); !errors.Is(err, export.ErrBadConceptChunk) {
		t.Errorf("corrupt concept chunk: err = %v", err)
	}
	if n := conceptNames(t, dst); len(n) != 0 {
		t.Errorf("library after a failed import: %v", n)
	}
	// A plain PNG: ErrNoSettings, as before.
	plain, _ := export.EncodePNG(img, "", "")
	os.WriteFile(filepath.Join(dir, "plain.png"), plain, 0o644)
	if _, err := dst.ImportPNG(filepath.Join(dir, "plain.png")); !errors.Is(err, export.ErrNoSettings) {
		t.Errorf("plain PNG: err = %v", err)
	}
	// A file too large for an image made here is refused before reading
	// (a sparse file: no disk used).
	huge := filepath.Join(dir, "huge.png")
	if err := os.WriteFile(huge, plain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, maxImportPNG+1); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.ImportPNG(huge); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("huge PNG: err = %v", err)
	}
	// Exporting a concept missing from the library says so.
	c.Concepts[0].Name = "gone"
	if err := src.ExportPNG(path, img, c, ExportOptions{Concepts: true}); err == nil {
		t.Error("exporting a missing concept: no error")
	}
}
