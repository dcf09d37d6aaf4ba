package ui

import (
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"fyne.io/fyne/v2"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

func TestSizeOptions(t *testing.T) {
	if got := sizeOptions(512, 8); !slices.Equal(got, sizeChoices) {
		t.Errorf("SD 1.x: %v, want %v", got, sizeChoices)
	}
	if got, want := sizeOptions(64, 16), []int{32, 48, 64, 80, 96, 112, 128}; !slices.Equal(got, want) {
		t.Errorf("default model: %v, want %v", got, want)
	}
	for _, c := range []struct{ native, multiple int }{{64, 16}, {512, 8}, {32, 16}, {96, 32}, {8, 8}} {
		got := sizeOptions(c.native, c.multiple)
		if !slices.Contains(got, c.native) || !slices.IsSorted(got) {
			t.Errorf("sizeOptions(%d, %d) = %v: want sorted, with the native side", c.native, c.multiple, got)
		}
		for _, v := range got {
			if v <= 0 || v%c.multiple != 0 {
				t.Errorf("sizeOptions(%d, %d) offers %d", c.native, c.multiple, v)
			}
		}
	}
}

// menuItem finds a main-menu item by its label.
func (s *studioWindow) menuItem(t *testing.T, label string) *fyne.MenuItem {
	t.Helper()
	for _, menu := range s.m.menus.main.Items {
		for _, it := range menu.Items {
			if it.Label == label {
				return it
			}
		}
	}
	t.Fatalf("no menu item %q", label)
	return nil
}

// size is the composer's selected image size.
func (s *studioWindow) size() (int, int) {
	w, _ := strconv.Atoi(s.m.composer.width.Selected)
	h, _ := strconv.Atoi(s.m.composer.height.Selected)
	return w, h
}

func TestUseDefaultModel(t *testing.T) {
	def := golden.Path(t, "tiny_diffusers")
	user := filepath.Join(t.TempDir(), "my_model")
	golden.CopyDir(t, def, user)
	s := newStudioWindow(t, Options{}, app.Options{DefaultModel: &app.DefaultModel{Name: "Default emoji model",
		Install: func() (string, error) { return def, nil }}})
	item := s.menuItem(t, "Use default model")
	if item.Disabled {
		t.Fatal("Use default model is disabled with a default model")
	}
	loadedIs := func(path string) func() bool {
		return func() bool {
			_, info := s.studio.Models.Current()
			return s.modelLoaded() && info.Path == path && s.m.modelPath == path
		}
	}
	item.Action()
	if got := s.m.preview.empty.Text; got != "Loading Default emoji model…" {
		t.Errorf("while loading the preview says %q", got)
	}
	s.q.pumpUntil(t, "default model load", loadedIs(def))
	_, info := s.studio.Models.Current()
	if !info.Default || info.NativeSize <= 0 {
		t.Fatalf("info %+v", info)
	}
	s.q.pumpUntil(t, "status", func() bool { return s.m.status.message.Text == app.DefaultModelStatus(info) })
	if w, h := s.size(); w != info.NativeSize || h != info.NativeSize {
		t.Errorf("size %dx%d, want the native %d", w, h, info.NativeSize)
	}
	want := sizeOptions(info.NativeSize, info.SizeMultiple)
	if got := s.m.composer.width.Options; len(got) != len(want) || got[0] != strconv.Itoa(want[0]) {
		t.Errorf("sizes offered %v, want %v", got, want)
	}
	// The user picks another size for it.
	other := want[len(want)-1]
	s.m.composer.width.SetSelected(strconv.Itoa(other))

	// The user's model: its own native size, remembered as recent.
	s.m.openModel(user)
	s.q.pumpUntil(t, "user model load", loadedIs(user))
	if w, h := s.size(); w != info.NativeSize || h != info.NativeSize {
		t.Errorf("size %dx%d on the user's model, want its native %d", w, h, info.NativeSize)
	}
	if r := s.studio.Settings.Get().RecentModels; !slices.Equal(r, []string{user}) {
		t.Errorf("recent models %q", r)
	}
	// Back to the default model: the size chosen for it comes back.
	item.Action()
	s.q.pumpUntil(t, "default model load", loadedIs(def))
	if w, h := s.size(); w != other || h != info.NativeSize {
		t.Errorf("size %dx%d back on the default model, want %dx%d", w, h, other, info.NativeSize)
	}
	if r := s.studio.Settings.Get().RecentModels; !slices.Equal(r, []string{user}) {
		t.Errorf("recent models %q after the default model", r)
	}
}

func TestUseDefaultModelDisabledWithoutOne(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	if item := s.menuItem(t, "Use default model"); !item.Disabled {
		t.Error("Use default model is enabled without a default model")
	}
}
