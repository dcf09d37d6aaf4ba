package ui

import (
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// writeSheetPhotos writes n small landscape photos and returns their URIs.
func writeSheetPhotos(t *testing.T, n int) []fyne.URI {
	t.Helper()
	var out []fyne.URI
	for _, p := range conceptstest.DiscPhotos(t, n, 48, "jpg") { // PNG data named .jpg: decoded by content
		out = append(out, storage.NewFileURI(p))
	}
	return out
}

func TestDropNonImagesSaysSo(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	txt := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(txt, []byte("hello"), 0o644)
	bad := filepath.Join(t.TempDir(), "broken.jpg")
	os.WriteFile(bad, []byte("not a jpeg"), 0o644)
	s.m.onDropped(fyne.NewPos(1, 1), []fyne.URI{storage.NewFileURI(txt), storage.NewFileURI(bad)})
	s.q.pumpUntil(t, "a message", func() bool { return s.w.Canvas().Overlays().Top() != nil })
	if s.m.trainSheet != nil {
		t.Error("a training sheet opened without a usable photo")
	}
	msg := overlayText(s.w.Canvas().Overlays().Top())
	if !strings.Contains(msg, "notes.txt: not a JPEG") || !strings.Contains(msg, "broken.jpg: not a JPEG, PNG or WebP image") {
		t.Errorf("message %q", msg)
	}
}

// overlayText joins the texts of the labels in o.
func overlayText(o fyne.CanvasObject) string {
	var out []string
	var walk func(fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch w := o.(type) {
		case *widget.Label:
			out = append(out, w.Text)
		case *canvas.Text:
			out = append(out, w.Text)
		case *fyne.Container:
			for _, c := range w.Objects {
				walk(c)
			}
		case fyne.Widget:
			r := test.WidgetRenderer(w)
			for _, c := range r.Objects() {
				walk(c)
			}
		}
	}
	walk(o)
	return strings.Join(out, "\n")
}

// TestTrainSheetDropFillStartCancel drops photos on the main window, fills
// the sheet, starts training on the tiny model, sees progress and cancels.
func TestTrainSheetDropFillStartCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts training on the tiny model")
	}
	s := newStudioWindow(t, Options{}, app.Options{})
	s.loadTiny(t)
	// Loading saved the recent models, which resets the preview settings
	// from the saved ones: make previews cheap again.
	s.studio.SetPreviewSettings(app.PreviewSettings{MaxSide: 32, Steps: 2})
	s.small(t)
	tr := s.studio.Training()
	t.Cleanup(func() { tr.Cancel(); tr.Wait() })

	s.m.onDropped(fyne.NewPos(10, 10), writeSheetPhotos(t, 3))
	s.q.pumpUntil(t, "thumbnails", func() bool { return s.m.trainSheet != nil && len(s.m.trainSheet.photos) == 3 })
	sh := s.m.trainSheet
	if sh.window == nil {
		t.Fatal("the training sheet is not shown")
	}
	if sh.photos[0].cropBox() != image.Rect(4, 0, 44, 40) {
		t.Errorf("default crop %v, want the centred square", sh.photos[0].cropBox())
	}
	test.Tap(sh.photos[0].button)
	if sh.photos[0].cropBox() != image.Rect(0, 0, 40, 40) || sh.photos[0].button.Text != "Crop: start" {
		t.Errorf("crop after a tap %v %q", sh.photos[0].cropBox(), sh.photos[0].button.Text)
	}
	if !sh.start.Disabled() {
		t.Error("start enabled without name and word")
	}
	test.Type(sh.name, "my disc")
	if sh.nameMsg.Text == "" {
		t.Error("no message for a name with a space")
	}
	sh.name.SetText("disc")
	test.Type(sh.word, "teddy bear")
	if !strings.Contains(sh.wordMsg.Text, "one") || !strings.Contains(sh.wordMsg.Text, "bear") {
		t.Errorf("word message %q, want one token and a suggestion", sh.wordMsg.Text)
	}
	sh.word.SetText("toy")
	if sh.nameMsg.Text != "" || sh.wordMsg.Text != "" || sh.start.Disabled() {
		t.Fatalf("messages %q %q, start disabled %v", sh.nameMsg.Text, sh.wordMsg.Text, sh.start.Disabled())
	}
	sh.steps.SetText("20")
	sh.size.SetText("32")
	r := sh.request()
	if r.Steps != 20 || r.Size != 32 || r.Preset != app.PresetQuick || len(r.Photos) != 3 || r.Photos[0].Crop != image.Rect(0, 0, 40, 40) {
		t.Fatalf("request %+v", r)
	}

	test.Tap(sh.start)
	s.q.pumpUntil(t, "progress", func() bool {
		if strings.HasPrefix(sh.message.Text, "Cannot start") {
			t.Fatal(sh.message.Text)
		}
		return sh.progress.Value > 0
	})
	if !sh.cancel.Visible() || !sh.start.Disabled() {
		t.Error("while training: cancel hidden or start enabled")
	}
	// The main window stays usable: the prompt takes typing.
	test.Type(s.m.composer.prompt, "a fox")
	test.Tap(sh.cancel)
	s.q.pumpUntil(t, "cancelled", func() bool { return strings.Contains(sh.message.Text, "stopped") })
	if sh.cancel.Visible() || sh.start.Text != "Continue training" || sh.start.Disabled() {
		t.Errorf("after cancel: cancel visible %v, start %q disabled %v", sh.cancel.Visible(), sh.start.Text, sh.start.Disabled())
	}

	// The stopped run is offered again: continuing restores its photos,
	// crops and fields.
	s.q.pumpUntil(t, "the continue button", func() bool { return len(sh.unfinished.Objects) == 1 })
	cont := sh.unfinished.Objects[0].(*widget.Button)
	if cont.Text != "Continue <disc>" {
		t.Fatalf("button %q", cont.Text)
	}
	sh.name.SetText("other")
	test.Tap(cont)
	s.q.pumpUntil(t, "restored photos", func() bool { return len(sh.photos) == 3 })
	if sh.name.Text != "disc" || sh.word.Text != "toy" || sh.steps.Text != "20" || sh.size.Text != "32" {
		t.Errorf("restored fields %q %q %q %q", sh.name.Text, sh.word.Text, sh.steps.Text, sh.size.Text)
	}
	if got := sh.request(); got.Photos[0].Crop != image.Rect(0, 0, 40, 40) || got.Photos[1].Crop != image.Rect(8, 0, 48, 40) {
		t.Errorf("restored crops %v %v", got.Photos[0].Crop, got.Photos[1].Crop)
	}
}

func TestSparklineDraws(t *testing.T) {
	test.NewTempApp(t)
	sp := newSparkline()
	if img := sp.draw(50, 20).(*image.NRGBA); !blank(img) {
		t.Error("an empty sparkline drew something")
	}
	sp.SetValues([]float64{1, 0.5, 0.7, 0.2})
	img := sp.draw(50, 20).(*image.NRGBA)
	// the first point is at the top left, the last (lowest) at the bottom right
	if img.NRGBAAt(0, 0).A == 0 || img.NRGBAAt(49, 19).A == 0 || img.NRGBAAt(49, 0).A != 0 {
		t.Errorf("corner pixels %v %v %v", img.NRGBAAt(0, 0), img.NRGBAAt(49, 19), img.NRGBAAt(49, 0))
	}
}

func blank(img *image.NRGBA) bool {
	for i := 3; i < len(img.Pix); i += 4 {
		if img.Pix[i] != 0 {
			return false
		}
	}
	return true
}

// The end of a run: a saved concept shows its sample, a failed self-check
// its explanation, and either way Start is back.
func TestTrainSheetShowsOutcome(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	s.m.openTrainSheet(nil)
	sh := s.m.trainSheet
	sh.setRunning(true)
	sh.onEvent(app.TrainingEvent{Name: "disc", Stage: "train", Label: "Training step 5 of 10", Step: 5, Total: 10, Losses: []float64{1, 0.8}, ETA: 90 * time.Second})
	s.q.pumpUntil(t, "progress", func() bool { return sh.progress.Value == 0.5 })
	if sh.eta.Text != "about 1m30s left" || len(sh.spark.Values()) != 2 || sh.stage.Text != "Training step 5 of 10" {
		t.Errorf("eta %q, %d losses, stage %q", sh.eta.Text, len(sh.spark.Values()), sh.stage.Text)
	}
	sh.onEvent(app.TrainingEvent{Name: "disc", Done: true, Err: fmt.Errorf("%w: the loss did not fall", app.ErrNotLearned)})
	s.q.pumpUntil(t, "the explanation", func() bool { return strings.Contains(sh.message.Text, "did not fall") })
	if sh.cancel.Visible() || sh.start.Text != "Continue training" || sh.sample.Visible() {
		t.Errorf("after a failed check: cancel %v, start %q, sample %v", sh.cancel.Visible(), sh.start.Text, sh.sample.Visible())
	}
	sh.setRunning(true)
	sh.onEvent(app.TrainingEvent{Name: "disc", Done: true, Concept: "disc", Sample: image.NewRGBA(image.Rect(0, 0, 32, 32))})
	s.q.pumpUntil(t, "the saved concept", func() bool { return strings.Contains(sh.message.Text, "<disc> is in the library") })
	if !sh.sample.Visible() || sh.cancel.Visible() {
		t.Errorf("after success: sample %v, cancel %v", sh.sample.Visible(), sh.cancel.Visible())
	}
}
