package ui

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// uiQueue is a Do that queues functions for the test goroutine (the UI
// thread here) to run, so widgets are only touched there.
type uiQueue chan func()

func (q uiQueue) do(fn func()) { q <- fn }

// pumpUntil runs queued functions until cond holds; the deadline only
// guards against a hang.
func (q uiQueue) pumpUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for !cond() {
		select {
		case fn := <-q:
			fn()
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type studioWindow struct {
	m      *MainWindow
	w      fyne.Window
	studio *app.Studio
	q      uiQueue
}

// newStudioWindow opens a main window on a studio with its own config
// folder, a cheap live preview and a queued Do.
func newStudioWindow(t *testing.T, opt Options, sopt app.Options) *studioWindow {
	t.Helper()
	test.NewTempApp(t)
	w := test.NewTempWindow(t, nil)
	if sopt.ConfigDir == "" {
		sopt.ConfigDir = t.TempDir()
	}
	sopt.PreviewDelay = time.Millisecond
	studio, err := app.OpenStudio(sopt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(studio.Close)
	studio.SetPreviewSettings(app.PreviewSettings{MaxSide: 32, Steps: 2})
	q := make(uiQueue, 100000)
	opt.Do = q.do
	return &studioWindow{m: NewMainWindow(w, studio, opt), w: w, studio: studio, q: q}
}

func (s *studioWindow) modelLoaded() bool {
	p, _ := s.studio.Models.Current()
	return p != nil && s.studio.Models.Loading() == ""
}

// loadTiny drops the tiny golden model on the window and waits for it.
func (s *studioWindow) loadTiny(t *testing.T) {
	t.Helper()
	s.m.onDropped(fyne.NewPos(10, 10), []fyne.URI{storage.NewFileURI(golden.Path(t, "tiny_diffusers"))})
	s.q.pumpUntil(t, "model load", func() bool { return s.modelLoaded() && s.m.preview.empty.Text == previewNoImage })
}

// small sets a quick composition on the tiny model.
func (s *studioWindow) small(t *testing.T) {
	t.Helper()
	_, info := s.studio.Models.Current()
	side := (16 + info.SizeMultiple - 1) / info.SizeMultiple * info.SizeMultiple
	c := export.Composition{Prompt: "", Seed: 5, Steps: 2, CFG: 5, Sampler: "euler_a", Width: side, Height: side}
	s.m.composer.setComposition(c)
}

func TestPromptHasFocusAtStart(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	if got := s.w.Canvas().Focused(); got != s.m.composer.prompt {
		t.Fatalf("focused %T, want the prompt", got)
	}
	// An artist can just type.
	s.w.Canvas().Focused().TypedRune('a')
	if s.m.composer.prompt.Text != "a" {
		t.Fatalf("prompt %q", s.m.composer.prompt.Text)
	}
}

func TestEmptyStateOpensModel(t *testing.T) {
	picked := make(chan struct{}, 1)
	model := golden.Path(t, "tiny_diffusers")
	s := newStudioWindow(t, Options{PickModel: func() (string, bool, error) {
		picked <- struct{}{}
		return filepath.Join(model, "model_index.json"), true, nil
	}}, app.Options{})
	if s.m.preview.empty.Text != previewNoModel || !s.m.preview.open.Visible() {
		t.Fatalf("empty state %q, open button visible %v", s.m.preview.empty.Text, s.m.preview.open.Visible())
	}
	test.Tap(s.m.preview.open)
	s.q.pumpUntil(t, "model load", func() bool { return s.modelLoaded() && s.m.preview.empty.Text == previewNoImage })
	if len(picked) != 1 {
		t.Fatal("the native picker was not used")
	}
	if s.m.preview.open.Visible() {
		t.Error("open button still shown with a model loaded")
	}
	if !strings.Contains(s.w.Title(), "tiny_diffusers") {
		t.Errorf("title %q does not name the model", s.w.Title())
	}
	if items := s.m.menus.recent.ChildMenu.Items; len(items) != 1 || items[0].Label != "tiny_diffusers" {
		t.Errorf("recent models menu %v", items)
	}
}

// Without a native dialog the Fyne one opens.
func TestOpenModelFallsBackToFyneDialog(t *testing.T) {
	s := newStudioWindow(t, Options{PickModel: func() (string, bool, error) {
		return "", false, errors.New("no native dialogs here")
	}}, app.Options{})
	s.m.menus.item(shortcutOpen).Action()
	s.q.pumpUntil(t, "Fyne's file dialog", func() bool { return s.w.Canvas().Overlays().Top() != nil })
}

func TestTypingShowsLivePreview(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	s.loadTiny(t)
	s.small(t)
	s.w.Canvas().Focus(s.m.composer.prompt)
	test.Type(s.m.composer.prompt, "a red fox")
	s.q.pumpUntil(t, "a final preview", func() bool {
		return s.m.preview.image.Visible() && strings.HasPrefix(s.m.preview.caption.Text, "Preview ")
	})
	if s.m.preview.image.Image == nil || s.m.preview.empty.Visible() {
		t.Fatal("preview image missing or empty state still shown")
	}
}

func TestRenderShortcutThenExport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "fox.png")
	s := newStudioWindow(t, Options{PickSavePNG: func(suggested string) (string, bool, error) {
		if !strings.HasSuffix(suggested, ".png") {
			return "", false, errors.New("bad suggestion " + suggested)
		}
		return out, true, nil
	}}, app.Options{})
	// Export before any render explains itself.
	s.m.menus.item(shortcutExport).Action()
	if s.w.Canvas().Overlays().Top() == nil {
		t.Fatal("no message when exporting before a render")
	}
	s.w.Canvas().Overlays().Remove(s.w.Canvas().Overlays().Top())

	s.loadTiny(t)
	s.small(t)
	test.Type(s.m.composer.prompt, "a red fox")
	s.m.menus.item(shortcutRender).Action() // Ctrl/Cmd-Enter
	s.q.pumpUntil(t, "the final render", func() bool { return s.m.lastImage != nil })
	if !strings.HasPrefix(s.m.preview.caption.Text, "Final render") {
		t.Errorf("caption %q", s.m.preview.caption.Text)
	}
	if list, err := s.studio.History.List(); err != nil || len(list) != 1 {
		t.Fatalf("history %v, %v", list, err)
	}

	s.m.menus.item(shortcutExport).Action() // Ctrl/Cmd-E
	s.q.pumpUntil(t, "the export", func() bool { return strings.HasPrefix(s.studio.Status(), "Exported ") })
	c, err := export.ReadCompositionFile(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Prompt != "a red fox" || c.Seed != 5 || c.Model != "tiny_diffusers" {
		t.Fatalf("exported settings %+v", c)
	}
}

func TestDropPNGRestoresSettings(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	want := export.Composition{Prompt: "a lighthouse", Negative: "fog", Seed: 99, Steps: 31, CFG: 6.5, Sampler: "ddim", Width: 640, Height: 384}
	path := filepath.Join(t.TempDir(), "old.png")
	img := test.NewWindow(nil).Canvas().Capture() // any image
	if err := export.SaveComposition(path, img, want, nil); err != nil {
		t.Fatal(err)
	}
	s.m.onDropped(fyne.NewPos(1, 1), []fyne.URI{storage.NewFileURI(path)})
	s.q.pumpUntil(t, "restored prompt", func() bool { return s.m.composer.prompt.Text == want.Prompt })
	got, err := s.m.composer.composition()
	if err != nil {
		t.Fatal(err)
	}
	if got.Seed != want.Seed || got.Steps != want.Steps || got.CFG != want.CFG || got.Sampler != want.Sampler ||
		got.Width != want.Width || got.Height != want.Height || got.Negative != want.Negative {
		t.Fatalf("composer shows %+v, want %+v", got, want)
	}
}

func TestDropBadFilesExplain(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("hi"), 0o644)
	plain := filepath.Join(dir, "plain.png")
	os.WriteFile(plain, []byte("not a png"), 0o644)
	photo := filepath.Join(dir, "cat.jpg")
	for _, p := range []string{notes, plain, photo} {
		s.m.onDropped(fyne.NewPos(1, 1), []fyne.URI{storage.NewFileURI(p)})
		s.q.pumpUntil(t, "a message for "+filepath.Base(p), func() bool { return s.w.Canvas().Overlays().Top() != nil })
		s.w.Canvas().Overlays().Remove(s.w.Canvas().Overlays().Top())
	}
	if !strings.Contains(s.studio.Status(), "not a model file") {
		t.Errorf("status %q", s.studio.Status())
	}
	if p, _ := s.studio.Models.Current(); p != nil {
		t.Error("a model appeared")
	}
	if s.m.preview.empty.Text != previewNoModel {
		t.Errorf("empty state %q after failed drops", s.m.preview.empty.Text)
	}
}

// The status bar shows a load's progress with a cancel button that works.
func TestStatusBarProgressAndCancel(t *testing.T) {
	block := func(ctx context.Context, path string, opt app.LoadOptions) (*app.Model, error) {
		opt.Progress(0.4)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s := newStudioWindow(t, Options{}, app.Options{Load: block})
	s.m.openModel(t.TempDir())
	s.q.pumpUntil(t, "progress", func() bool { return s.m.status.progress.Visible() && s.m.status.progress.Value > 0.3 })
	if !s.m.status.cancel.Visible() || !strings.HasPrefix(s.m.status.message.Text, "Loading") {
		t.Fatalf("cancel visible %v, message %q", s.m.status.cancel.Visible(), s.m.status.message.Text)
	}
	if !strings.HasPrefix(s.m.preview.empty.Text, "Loading") {
		t.Errorf("preview says %q while loading", s.m.preview.empty.Text)
	}
	test.Tap(s.m.status.cancel)
	s.q.pumpUntil(t, "cancelled load", func() bool { return !s.m.status.progress.Visible() && s.m.preview.empty.Text == previewNoModel })
	if s.w.Canvas().Overlays().Top() != nil {
		t.Error("a cancelled load showed an error dialog")
	}
}

func TestInvalidFieldsDoNotCompose(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	for _, tc := range []struct {
		name  string
		set   func()
		field string
	}{
		{"seed", func() { s.m.composer.seed.SetText("abc") }, "seed"},
		{"steps", func() { s.m.composer.seed.SetText("1"); s.m.composer.steps.SetText("0") }, "steps"},
	} {
		tc.set()
		if _, err := s.m.composer.composition(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	s.m.composer.steps.SetText("12")
	c, err := s.m.composer.composition()
	if err != nil || c.Steps != 12 || c.Seed != 1 {
		t.Fatalf("composition %+v, %v", c, err)
	}
	test.Tap(s.m.composer.dice)
	if v, err := strconv.ParseUint(s.m.composer.seed.Text, 10, 64); err != nil || v >= 1<<32 {
		t.Fatalf("random seed %q", s.m.composer.seed.Text)
	}
}

func TestSettingsAndAboutDialogs(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	s.m.menus.onSettings()
	if s.w.Canvas().Overlays().Top() == nil {
		t.Fatal("no settings dialog")
	}
	s.w.Canvas().Overlays().Remove(s.w.Canvas().Overlays().Top())
	s.m.menus.onAbout()
	if s.w.Canvas().Overlays().Top() == nil {
		t.Fatal("no about box")
	}
}

func TestHistoryDialogRestores(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	img := test.NewWindow(nil).Canvas().Capture()
	for i, prompt := range []string{"older", "newer"} {
		c := export.Composition{Prompt: prompt, Seed: uint64(10 + i), Steps: 7, CFG: 4, Sampler: "euler", Width: 320, Height: 448}
		if _, err := s.studio.History.Add(img, c); err != nil {
			t.Fatal(err)
		}
	}
	s.m.onHistory()
	s.q.pumpUntil(t, "the history dialog", func() bool { return s.m.history != nil })
	h := s.m.history
	if len(h.entries) != 2 || h.thumbs[0] == nil || h.thumbs[0].Bounds().Dx() > thumbSide {
		t.Fatalf("%d entries, thumbnail %v", len(h.entries), h.thumbs[0])
	}
	row := h.newRow()
	h.updateRow(0, row)
	if label := row.(*fyne.Container).Objects[0].(*widget.Label).Text; !strings.Contains(label, "older") && !strings.Contains(label, "newer") {
		t.Fatalf("row label %q", label)
	}
	h.list.Select(1)
	c, err := s.m.composer.composition()
	if err != nil {
		t.Fatal(err)
	}
	want := h.entries[1].Composition
	if c.Prompt != want.Prompt || c.Seed != want.Seed || c.Width != 320 || c.Height != 448 || c.Sampler != "euler" {
		t.Fatalf("composer shows %+v, want %+v", c, want)
	}
}

// Small images (the 32-px default model's) are enlarged by whole pixels,
// larger ones smoothly.
func TestPreviewScalesSmallImagesByPixels(t *testing.T) {
	p := newPreview(func() {})
	p.build()
	p.setImage(image.NewRGBA(image.Rect(0, 0, 32, 32)))
	if p.image.ScaleMode != canvas.ImageScalePixels {
		t.Errorf("32-px image: scale mode %v, want pixels", p.image.ScaleMode)
	}
	p.setImage(image.NewRGBA(image.Rect(0, 0, 512, 256)))
	if p.image.ScaleMode != canvas.ImageScaleSmooth {
		t.Errorf("512-px image: scale mode %v, want smooth", p.image.ScaleMode)
	}
}
