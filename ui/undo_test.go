package ui

import (
	"slices"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
)

// pressUndo delivers Ctrl/Cmd-Z as the desktop driver does: the driver
// makes it a fyne.ShortcutUndo and tries the main menu's items first (by
// shortcut name), then the focused widget if it takes shortcuts, then the
// canvas.
func pressUndo(t *testing.T, s *studioWindow) {
	t.Helper()
	sc := &fyne.ShortcutUndo{}
	for _, menu := range s.m.menus.main.Items {
		for _, it := range menu.Items {
			if it.Shortcut != nil && it.Shortcut.ShortcutName() == sc.ShortcutName() {
				it.Action()
				return
			}
		}
	}
	if f, ok := s.w.Canvas().Focused().(fyne.Shortcutable); ok {
		f.TypedShortcut(sc)
		return
	}
	s.w.Canvas().(fyne.Shortcutable).TypedShortcut(sc)
}

// Ctrl/Cmd-Z in the prompt undoes typing there and leaves the library
// alone; with no text field focused it brings back the deleted concept;
// the Edit menu's item always does.
func TestUndoKeyPrefersFocusedEntry(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{ConfigDir: t.TempDir()})
	conceptstest.WriteSmall(t, s.studio.Concepts.Dir(), "tubby", "cat", "abc")
	s.m.refreshLibrary()
	s.m.onConceptAction("delete", "tubby")
	s.q.pumpUntil(t, "the delete", func() bool { return !slices.Contains(cardNames(s.m.library), "tubby") })

	prompt := s.m.composer.prompt
	prompt.SetText("")
	s.w.Canvas().Focus(prompt)
	test.Type(prompt, "a fox")
	if prompt.Text != "a fox" {
		t.Fatalf("prompt %q", prompt.Text)
	}
	pressUndo(t, s)
	if prompt.Text == "a fox" {
		t.Error("Ctrl-Z in the prompt did not undo the typing")
	}
	if !s.studio.Concepts.CanUndo() { // the undo runs at once: nothing to wait for
		t.Fatal("Ctrl-Z in the prompt undid the library delete")
	}

	s.w.Canvas().Unfocus()
	typed := prompt.Text
	pressUndo(t, s)
	s.q.pumpUntil(t, "the library undo", func() bool { return slices.Contains(cardNames(s.m.library), "tubby") })
	if prompt.Text != typed {
		t.Errorf("the library undo changed the prompt to %q", prompt.Text)
	}

	// The menu item, clicked while the prompt has the focus.
	s.m.onConceptAction("delete", "tubby")
	s.q.pumpUntil(t, "the second delete", func() bool { return !slices.Contains(cardNames(s.m.library), "tubby") })
	s.w.Canvas().Focus(prompt)
	s.m.menus.item(shortcutUndo).Action()
	s.q.pumpUntil(t, "the menu's undo", func() bool { return slices.Contains(cardNames(s.m.library), "tubby") })
}
