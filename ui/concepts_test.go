package ui

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
)

// cardNames lists the names the library panel's cards show.
func cardNames(l *Library) []string {
	var out []string
	for _, c := range l.list {
		out = append(out, c.Name)
	}
	return out
}

// cardButton returns the name button of the card for name.
func cardButton(t *testing.T, l *Library, name string) *widget.Button {
	t.Helper()
	for _, o := range l.cards.Objects {
		b, ok := o.(*fyne.Container)
		if !ok {
			continue
		}
		var found *widget.Button
		walk(b, func(o fyne.CanvasObject) {
			if btn, ok := o.(*widget.Button); ok && btn.Text == app.Placeholder(name) {
				found = btn
			}
		})
		if found != nil {
			return found
		}
	}
	t.Fatalf("no card for %s", name)
	return nil
}

func walk(o fyne.CanvasObject, fn func(fyne.CanvasObject)) {
	fn(o)
	switch v := o.(type) {
	case *fyne.Container:
		for _, c := range v.Objects {
			walk(c, fn)
		}
	case *widget.Accordion:
		for _, it := range v.Items {
			walk(it.Detail, fn)
		}
	case *widget.Form:
		for _, it := range v.Items {
			walk(it.Widget, fn)
		}
	}
}

// The library panel lists the concepts; tapping a card writes <name> in
// the prompt, which adds its β slider (τ under Advanced) and key locking;
// the sliders change the composition; delete and Ctrl/Cmd-Z undo work.
func TestLibraryCardsAndSliders(t *testing.T) {
	dir := t.TempDir()
	s := newStudioWindow(t, Options{}, app.Options{ConfigDir: dir})
	conceptstest.WriteSmall(t, s.studio.Concepts.Dir(), "tubby", "cat", "abc")
	conceptstest.WriteSmall(t, s.studio.Concepts.Dir(), "pot", "vase", "abc")
	s.m.refreshLibrary()
	if got := cardNames(s.m.library); !slices.Equal(got, []string{"pot", "tubby"}) {
		t.Fatalf("cards %v", got)
	}
	if len(s.m.library.cards.Objects) != 2 {
		t.Fatalf("%d card objects", len(s.m.library.cards.Objects))
	}
	test.Tap(cardButton(t, s.m.library, "tubby"))
	if !strings.Contains(s.m.composer.prompt.Text, "<tubby>") {
		t.Fatalf("prompt %q", s.m.composer.prompt.Text)
	}
	if s.w.Canvas().Focused() != s.m.composer.prompt {
		t.Error("the prompt lost the focus")
	}
	rows := s.m.composer.concepts.rows
	if len(rows) != 1 || rows[0].use.Name != "tubby" || math.Abs(rows[0].beta.Value-0.7) > 1e-6 {
		t.Fatalf("rows %+v", rows)
	}
	var labels []string
	walk(s.m.composer.slidersColumn, func(o fyne.CanvasObject) {
		if l, ok := o.(*widget.Label); ok {
			labels = append(labels, l.Text)
		}
	})
	for _, want := range []string{"<tubby>", "Likeness", "Prompt"} {
		if !slices.Contains(labels, want) {
			t.Errorf("slider labels %q lack %q", labels, want)
		}
	}
	rows[0].beta.SetValue(0.4)
	rows[0].tau.SetValue(0.3)
	s.m.composer.concepts.lock.SetSelected(lockGlobal)
	c, err := s.m.composer.composition()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Concepts) != 1 || c.Concepts[0].Beta != 0.4 || c.Concepts[0].Tau != 0.3 || c.Concepts[0].Locking != "global" {
		t.Errorf("composition concepts %+v", c.Concepts)
	}
	// A second concept keeps the first one's gate.
	test.Tap(cardButton(t, s.m.library, "pot"))
	rows = s.m.composer.concepts.rows
	if len(rows) != 2 || rows[0].beta.Value != 0.4 || rows[1].use.Name != "pot" {
		t.Fatalf("rows after adding pot: %+v", rows)
	}
	// Removing the word from the prompt removes the row.
	s.m.composer.prompt.SetText("a <pot>")
	if rows = s.m.composer.concepts.rows; len(rows) != 1 || rows[0].use.Name != "pot" {
		t.Fatalf("rows after removing tubby: %+v", rows)
	}

	s.m.onConceptAction("delete", "tubby")
	s.q.pumpUntil(t, "the library refresh", func() bool { return !slices.Contains(cardNames(s.m.library), "tubby") })
	s.m.menus.item(shortcutUndo).Action() // Ctrl/Cmd-Z
	s.q.pumpUntil(t, "the undo", func() bool { return slices.Contains(cardNames(s.m.library), "tubby") })

	s.m.onConceptAction("duplicate", "pot")
	s.q.pumpUntil(t, "the duplicate", func() bool { return slices.Contains(cardNames(s.m.library), "pot-2") })
	s.m.renameConcept("pot-2", "vase")
	s.q.pumpUntil(t, "the rename", func() bool { return slices.Contains(cardNames(s.m.library), "vase") })
	out := filepath.Join(t.TempDir(), "out.concept")
	s2 := newStudioWindow(t, Options{PickSaveConcept: func(string) (string, bool, error) { return out, true, nil },
		PickConcept: func() (string, bool, error) { return out, true, nil }}, app.Options{ConfigDir: dir})
	s2.m.onConceptAction("export", "vase")
	s2.q.pumpUntil(t, "the export", func() bool { return strings.HasPrefix(s2.studio.Status(), "Exported vase") })
	s2.m.onImportConcept()
	s2.q.pumpUntil(t, "the import", func() bool { return slices.Contains(cardNames(s2.m.library), "vase-2") })
}

// With the tiny model loaded, a concept of another base model is greyed
// with the reason, and a concept of this model changes the live preview
// when its slider moves.
func TestConceptsDisabledAndPreview(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{Captions: conceptstest.Captions(t)})
	s.loadTiny(t)
	p, _ := s.studio.Models.Current()
	conceptstest.WriteFor(t, p, s.studio.Concepts.Dir(), "tubby", "cat", 0.1)
	conceptstest.WriteSmall(t, s.studio.Concepts.Dir(), "alien", "cat", "0123456789")
	s.m.refreshLibrary()
	s.q.pumpUntil(t, "the disabled card", func() bool {
		i := slices.IndexFunc(s.m.library.list, func(c app.ConceptInfo) bool { return c.Name == "alien" })
		return i >= 0 && s.m.library.list[i].Disabled != ""
	})
	if !cardButton(t, s.m.library, "alien").Disabled() || cardButton(t, s.m.library, "tubby").Disabled() {
		t.Error("only the other model's concept should be disabled")
	}
	s.small(t)
	test.Tap(cardButton(t, s.m.library, "tubby"))
	s.q.pumpUntil(t, "a preview with the concept", func() bool {
		return s.m.preview.image.Visible() && strings.HasPrefix(s.m.preview.caption.Text, "Preview ")
	})
	first := s.m.preview.image.Image
	s.m.composer.concepts.rows[0].beta.SetValue(0.2)
	s.q.pumpUntil(t, "a new preview after the slider moved", func() bool {
		return s.m.preview.image.Image != first && strings.HasPrefix(s.m.preview.caption.Text, "Preview ")
	})
	// The β sweep: a strip of images; picking one sets its β.
	var sweep *widget.Button
	walk(s.m.composer.slidersColumn, func(o fyne.CanvasObject) {
		if b, ok := o.(*widget.Button); ok && b.Text == "Sweep β…" {
			sweep = b
		}
	})
	if sweep == nil {
		t.Fatal("no sweep button")
	}
	test.Tap(sweep)
	s.q.pumpUntil(t, "the sweep", func() bool { return s.m.sweepDialog != nil })
	betas := app.SweepBetas(sweepSize)
	if len(s.m.sweepPicks) != len(betas) {
		t.Fatalf("%d sweep images, want %d", len(s.m.sweepPicks), len(betas))
	}
	test.Tap(s.m.sweepPicks[len(betas)-1])
	if got := s.m.composer.concepts.rows[0].beta.Value; math.Abs(got-betas[len(betas)-1]) > 0.006 {
		t.Errorf("β after picking the last image: %g, want %g", got, betas[len(betas)-1])
	}
}
