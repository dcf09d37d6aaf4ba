package ui

import (
	"slices"
	"sync"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/perfusion-studio/perfusion/app"
)

// newTestMainWindow builds a MainWindow in a headless test window.
func newTestMainWindow(t *testing.T, do func(func())) (*MainWindow, *app.Studio, fyne.Window) {
	t.Helper()
	test.NewTempApp(t)
	w := test.NewTempWindow(t, nil)
	studio := app.NewStudio()
	m := NewMainWindow(w, studio, Options{Do: do, Version: "9.8.7"})
	return m, studio, w
}

// runNow is a Do for tests that call hooks on the test goroutine.
func runNow(fn func()) { fn() }

func TestMainWindowHasAllRegions(t *testing.T) {
	m, _, w := newTestMainWindow(t, runNow)
	laidOut := test.LaidOutObjects(w.Content())
	for name, obj := range map[string]fyne.CanvasObject{
		"library title":  m.library.title,
		"library empty":  m.library.empty,
		"preview frame":  m.preview.frame,
		"preview empty":  m.preview.empty,
		"prompt":         m.composer.prompt,
		"sliders title":  m.composer.slidersTitle,
		"sliders empty":  m.composer.slidersEmpty,
		"status message": m.status.message,
		"version":        m.status.ver,
	} {
		if obj == nil {
			t.Errorf("%s was not built", name)
			continue
		}
		if !slices.Contains(laidOut, obj) {
			t.Errorf("%s is not in the window's content", name)
			continue
		}
		if !obj.Visible() || obj.Size().IsZero() {
			t.Errorf("%s is hidden or has zero size (%v)", name, obj.Size())
		}
	}
	if got := m.library.title.Text; got != "Concepts" {
		t.Errorf("library title = %q", got)
	}
	if got := m.status.ver.Text; got != "v9.8.7" {
		t.Errorf("version label = %q, want %q", got, "v9.8.7")
	}
	if got := m.composer.prompt.PlaceHolder; got == "" {
		t.Error("prompt has no placeholder")
	}
}

func TestMainWindowLayout(t *testing.T) {
	m, _, w := newTestMainWindow(t, runNow)
	if got := w.Canvas().Size(); got.Width < defaultWidth || got.Height < defaultHeight {
		t.Fatalf("window is %v, want at least %dx%d", got, defaultWidth, defaultHeight)
	}
	drv := fyne.CurrentApp().Driver()
	pos := drv.AbsolutePositionForObject
	library, preview := pos(m.library.title), pos(m.preview.frame)
	prompt, sliders := pos(m.composer.prompt), pos(m.composer.slidersTitle)
	status := pos(m.status.message)

	if library.X >= preview.X {
		t.Errorf("library (x=%v) is not left of the preview (x=%v)", library.X, preview.X)
	}
	if previewBottom := preview.Y + m.preview.frame.Size().Height; prompt.Y < previewBottom {
		t.Errorf("prompt (y=%v) is not below the preview (bottom %v)", prompt.Y, previewBottom)
	}
	if sliders.X <= prompt.X || sliders.Y >= status.Y {
		t.Errorf("sliders (%v) are not right of the prompt (%v) and above the status bar", sliders, prompt)
	}
	if bottom := status.Y + m.status.message.Size().Height; bottom < w.Canvas().Size().Height-40 {
		t.Errorf("status bar ends at y=%v, want it along the bottom of %v", bottom, w.Canvas().Size())
	}
}

func TestStatusBarShowsInitialStatus(t *testing.T) {
	m, studio, _ := newTestMainWindow(t, runNow)
	if got := m.status.message.Text; got != studio.Status() {
		t.Errorf("status bar shows %q, want %q", got, studio.Status())
	}
}

// TestStatusBarUpdatesThroughDo sets the status from a background goroutine,
// as services do, and checks the label changes only when the injected Do's
// function runs on the test goroutine (the UI thread here).
func TestStatusBarUpdatesThroughDo(t *testing.T) {
	queue := make(chan func(), 1)
	m, studio, _ := newTestMainWindow(t, func(fn func()) { queue <- fn })

	var wg sync.WaitGroup
	wg.Go(func() { studio.SetStatus("Loading model…") })
	wg.Wait()

	if got := m.status.message.Text; got != app.StatusNoModel {
		t.Fatalf("label changed to %q before Do's function ran", got)
	}
	select {
	case fn := <-queue:
		fn()
	default:
		t.Fatal("status change never reached Do")
	}
	if got := m.status.message.Text; got != "Loading model…" {
		t.Errorf("status bar shows %q, want %q", got, "Loading model…")
	}
}

func TestNilDoDefaultsToFyneDo(t *testing.T) {
	test.NewTempApp(t)
	w := test.NewTempWindow(t, nil)
	studio := app.NewStudio()
	m := NewMainWindow(w, studio, Options{})
	if m.do == nil {
		t.Fatal("Do was left nil")
	}
	if m.status.ver.Text != "" {
		t.Errorf("version label = %q with no version given", m.status.ver.Text)
	}
	// The test driver's fyne.Do runs the function at once when not called
	// from the process's main goroutine, which test functions never are.
	studio.SetStatus("Ready")
	if got := m.status.message.Text; got != "Ready" {
		t.Errorf("status bar shows %q, want %q", got, "Ready")
	}
}

// The composer prompt must accept text.
func TestPromptTakesInput(t *testing.T) {
	m, _, w := newTestMainWindow(t, runNow)
	w.Canvas().Focus(m.composer.prompt)
	test.Type(m.composer.prompt, "a red fox")
	if got := m.composer.prompt.Text; got != "a red fox" {
		t.Errorf("prompt text = %q", got)
	}
}
