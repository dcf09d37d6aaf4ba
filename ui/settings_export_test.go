package ui

import (
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// The settings dialog's export checkbox turns embedding concepts off and
// on (on by default).
func TestSettingsEmbedConcepts(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	if !s.studio.ExportOptions().Concepts {
		t.Fatal("concepts not embedded by default")
	}
	s.m.menus.onSettings()
	top := s.w.Canvas().Overlays().Top()
	if top == nil {
		t.Fatal("no settings dialog")
	}
	var check *widget.Check
	var save *widget.Button
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch w := o.(type) {
		case *widget.Check:
			check = w
		case *widget.Button:
			if w.Text == "Save" {
				save = w
			}
		}
		if c, ok := o.(*fyne.Container); ok {
			for _, k := range c.Objects {
				walk(k)
			}
		} else if w, ok := o.(fyne.Widget); ok {
			for _, k := range test.WidgetRenderer(w).Objects() {
				walk(k)
			}
		}
	}
	walk(top)
	if check == nil || save == nil || !check.Checked {
		t.Fatalf("settings dialog: export checkbox %v (want checked), save button %v", check, save)
	}
	test.Tap(check)
	test.Tap(save)
	if s.studio.ExportOptions().Concepts {
		t.Fatal("unchecking the box kept concepts in exports")
	}
	if !s.studio.Settings.Get().ExportWithoutConcepts {
		t.Fatal("the setting was not saved")
	}
}
