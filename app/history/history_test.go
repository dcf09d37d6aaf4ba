package history

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
)

func img() *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, 4, 4))
	m.Set(1, 2, color.RGBA{200, 10, 10, 255})
	return m
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "history"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Now = func() time.Time { now = now.Add(time.Second); return now }
	return s
}

func comp(seed uint64) export.Composition {
	return export.Composition{Prompt: "a fox", Negative: "blur", Seed: seed, Steps: 20, CFG: 7, Sampler: "euler_a",
		Width: 4, Height: 4, Model: "tiny", Concepts: []export.ConceptUse{{Name: "cat", Beta: 0.5, Tau: 0.1}}}
}

func TestAddListRestore(t *testing.T) {
	s := newStore(t)
	var ids []string
	for seed := range uint64(3) {
		e, err := s.Add(img(), comp(seed))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
		if _, err := os.Stat(e.Image); err != nil {
			t.Fatalf("image not saved: %v", err)
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != ids[2] || list[2].ID != ids[0] {
		t.Fatalf("list %v, want newest first of %v", list, ids)
	}
	got, err := s.Restore(ids[1])
	if err != nil {
		t.Fatal(err)
	}
	want := comp(1)
	want.Version = export.CompositionVersion
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored %+v\nwant %+v", got, want)
	}
	// The PNG carries the same settings.
	fromPNG, err := export.ReadCompositionFile(list[1].Image, nil)
	if err != nil || !reflect.DeepEqual(fromPNG, want) {
		t.Fatalf("PNG settings %+v, %v", fromPNG, err)
	}
	// Nothing but entries in the folder: no temporary files.
	des, _ := os.ReadDir(s.Dir())
	if len(des) != 6 {
		t.Fatalf("%d files in the history folder, want 6", len(des))
	}
}

func TestSameTimeAndSeedGetDistinctIDs(t *testing.T) {
	s := newStore(t)
	fixed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return fixed }
	a, err := s.Add(img(), comp(9))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Add(img(), comp(9))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID {
		t.Fatalf("two entries share ID %s", a.ID)
	}
	if list, _ := s.List(); len(list) != 2 {
		t.Fatalf("%d entries, want 2", len(list))
	}
}

func TestDamagedEntriesAreSkipped(t *testing.T) {
	s := newStore(t)
	good, _ := s.Add(img(), comp(1))
	os.WriteFile(filepath.Join(s.Dir(), "broken.json"), []byte("{"), 0o644)
	list, err := s.List()
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("err = %v, want one naming the damaged entry", err)
	}
	if len(list) != 1 || list[0].ID != good.ID {
		t.Fatalf("list = %v", list)
	}
}

func TestRestoreAndDeleteRefuseBadIDs(t *testing.T) {
	s := newStore(t)
	for _, id := range []string{"", "../settings", "a/b", ".hidden"} {
		if _, err := s.Restore(id); err == nil {
			t.Errorf("Restore(%q): no error", id)
		}
		if err := s.Delete(id); err == nil {
			t.Errorf("Delete(%q): no error", id)
		}
	}
	if _, err := s.Restore("missing"); err == nil {
		t.Error("Restore of a missing entry: no error")
	}
}

func TestDelete(t *testing.T) {
	s := newStore(t)
	e, _ := s.Add(img(), comp(1))
	if err := s.Delete(e.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("entry still listed: %v", list)
	}
	if _, err := os.Stat(e.Image); !os.IsNotExist(err) {
		t.Fatalf("image still there: %v", err)
	}
}

func TestAddNoImage(t *testing.T) {
	s := newStore(t)
	if _, err := s.Add(nil, comp(1)); err == nil {
		t.Fatal("no error for a nil image")
	}
}

func TestOpenNoFolder(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Fatal("no error for an empty folder name")
	}
}
