package ui

import (
	"context"
	"errors"
	"fmt"
	"image"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// photoThumbSide is the side of a photo's thumbnail in the sheet, in pixels.
const photoThumbSide = 128

// Preset labels of the sheet.
var presetLabels = map[string]string{
	app.PresetQuick: "Quick (256 px, minutes on a laptop)",
	app.PresetPaper: "Paper (512 px, 400 steps, slow on a CPU)",
}

// sheetPhoto is one photo in the sheet.
type sheetPhoto struct {
	preview app.PhotoPreview
	crop    int // 0 centre, 1 start (left/top), 2 end (right/bottom), -1 custom
	custom  image.Rectangle
	view    *cropView
	button  *widget.Button
}

// TrainSheet teaches a concept from photos. It is a window of its own, so
// the user keeps composing in the main window while a concept trains; the
// training runs in the background through app.Training.
type TrainSheet struct {
	m        *MainWindow
	training *app.Training
	window   fyne.Window
	content  fyne.CanvasObject // built once, shown again when reopened

	photos  []*sheetPhoto
	grid    *fyne.Container
	message *widget.Label // photo problems and run results

	name, word, steps, size *widget.Entry
	nameMsg, wordMsg        *widget.Label
	preset                  *widget.RadioGroup
	start, cancel           *widget.Button
	progress                *widget.ProgressBar
	stage, eta              *widget.Label
	spark                   *Sparkline
	sample                  *canvas.Image // the finished concept's self-check render
	samples                 *sampleStrip  // samples drawn while it trains
	running                 bool
	unfinished              *fyne.Container            // "Continue <name>" buttons
	crops                   map[string]image.Rectangle // crops to restore, by photo
}

// openTrainSheet shows the training sheet (making it on first use) and
// adds the photos at paths to it.
func (m *MainWindow) openTrainSheet(paths []string) {
	if m.trainSheet == nil {
		m.trainSheet = newTrainSheet(m)
	}
	m.trainSheet.show()
	if len(paths) > 0 {
		m.trainSheet.addPhotos(paths)
	}
}

func newTrainSheet(m *MainWindow) *TrainSheet {
	t := &TrainSheet{m: m, training: m.studio.Training()}
	t.training.OnEvent(t.onEvent)
	return t
}

// show opens the sheet's window, or raises it.
func (t *TrainSheet) show() {
	if t.window == nil {
		if t.content == nil {
			t.content = t.build()
		}
		t.window = fyne.CurrentApp().NewWindow("Teach a concept")
		t.window.SetContent(t.content) // reopened, it shows the same photos and run
		t.window.Resize(fyne.NewSize(640, 620))
		t.window.SetOnClosed(func() { t.window = nil }) // a run goes on; reopening shows it
		t.window.SetOnDropped(func(_ fyne.Position, uris []fyne.URI) { t.addPhotos(filePaths(uris)) })
	}
	t.window.Show()
	t.window.RequestFocus()
}

func (t *TrainSheet) build() fyne.CanvasObject {
	t.grid = container.NewGridWrap(fyne.NewSize(photoThumbSide, photoThumbSide+40))
	t.message = widget.NewLabel("Drop 1 to 20 photos of the subject here: a few varied ones work best.")
	t.message.Wrapping = fyne.TextWrapWord
	t.name = widget.NewEntry()
	t.name.SetPlaceHolder("e.g. teddy_bob (written <teddy_bob> in prompts)")
	t.name.OnChanged = func(string) { t.validate() }
	t.word = widget.NewEntry()
	t.word.SetPlaceHolder("what it is, one word: dog, teddy, mug…")
	t.word.OnChanged = func(string) { t.validate() }
	t.nameMsg, t.wordMsg = widget.NewLabel(""), widget.NewLabel("")
	t.nameMsg.Importance, t.wordMsg.Importance = widget.DangerImportance, widget.DangerImportance
	t.nameMsg.Wrapping, t.wordMsg.Wrapping = fyne.TextWrapWord, fyne.TextWrapWord
	t.preset = widget.NewRadioGroup([]string{presetLabels[app.PresetQuick], presetLabels[app.PresetPaper]}, nil)
	t.preset.SetSelected(presetLabels[app.PresetQuick])
	t.preset.Required = true
	t.steps, t.size = widget.NewEntry(), widget.NewEntry()
	t.steps.SetPlaceHolder("preset's")
	t.size.SetPlaceHolder("preset's")
	t.steps.Validator, t.size.Validator = optionalCount, optionalCount
	form := widget.NewForm(
		widget.NewFormItem("Name", container.NewVBox(t.name, t.nameMsg)),
		widget.NewFormItem("It is a", container.NewVBox(t.word, t.wordMsg)),
		widget.NewFormItem("Preset", t.preset),
		widget.NewFormItem("Steps", t.steps),
		widget.NewFormItem("Size (px)", t.size),
	)
	t.start = widget.NewButton("Start training", t.onStart)
	t.start.Importance = widget.HighImportance
	t.cancel = widget.NewButton("Cancel training", t.onCancel)
	t.cancel.Hide()
	t.progress = widget.NewProgressBar()
	t.stage, t.eta = widget.NewLabel(""), widget.NewLabel("")
	t.spark = newSparkline()
	t.sample = canvas.NewImageFromImage(nil)
	t.sample.FillMode = canvas.ImageFillContain
	t.sample.SetMinSize(fyne.NewSize(64, 64))
	t.sample.Hide()
	t.samples = newSampleStrip()
	run := container.NewVBox(t.stage, t.progress, container.NewBorder(nil, nil, nil, container.NewHBox(t.eta, t.samples.object(), t.sample), t.spark),
		container.NewHBox(t.start, t.cancel))
	photos := container.NewVScroll(t.grid)
	photos.SetMinSize(fyne.NewSize(photoThumbSide*4, photoThumbSide+48))
	t.unfinished = container.NewHBox()
	t.validate()
	go t.findUnfinished()
	return container.NewBorder(container.NewVBox(t.unfinished, photos, t.message), run, nil, nil, container.NewVScroll(form))
}

// findUnfinished offers to continue the runs that were cancelled or cut
// short by a crash.
func (t *TrainSheet) findUnfinished() {
	rs, err := t.training.Unfinished()
	if err != nil || len(rs) == 0 {
		return
	}
	t.m.do(func() {
		for _, r := range rs {
			t.unfinished.Add(widget.NewButton("Continue <"+r.Name+">", func() { t.restore(r) }))
		}
	})
}

// restore fills the sheet with an unfinished run's request; Start then
// continues it from its resume file.
func (t *TrainSheet) restore(r app.TrainRequest) {
	t.photos = nil
	t.grid.RemoveAll()
	t.crops = map[string]image.Rectangle{}
	var paths []string
	for _, p := range r.Photos {
		t.crops[p.Path] = p.Crop
		paths = append(paths, p.Path)
	}
	t.name.SetText(r.Name)
	t.word.SetText(r.Word)
	t.preset.SetSelected(presetLabels[app.PresetQuick])
	if r.Preset == app.PresetPaper {
		t.preset.SetSelected(presetLabels[app.PresetPaper])
	}
	t.steps.SetText(countText(r.Steps))
	t.size.SetText(countText(r.Size))
	t.start.SetText("Continue training")
	t.addPhotos(paths)
}

func countText(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// optionalCount accepts "" or a positive whole number.
func optionalCount(s string) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err != nil || n <= 0 {
		return errors.New("a positive whole number, or empty for the preset's")
	}
	return nil
}

// filePaths returns the local files among uris.
func filePaths(uris []fyne.URI) []string {
	var out []string
	for _, u := range uris {
		if u.Scheme() == "file" {
			out = append(out, u.Path())
		}
	}
	return out
}

// addPhotos decodes the photos off the UI thread and shows each that is
// usable; the others are named with the reason.
// skipped names dropped files that were not images at all.
func (t *TrainSheet) addPhotos(paths []string, skipped ...string) {
	go func() {
		ok, bad := loadPhotos(paths, skipped)
		t.m.do(func() { t.showPhotos(ok, bad) })
	}()
}

// loadPhotos decodes the photos at paths (run it off the UI thread); bad
// says why each unusable one, and each skipped file, is not used.
func loadPhotos(paths, skipped []string) (ok []app.PhotoPreview, bad []string) {
	for _, n := range skipped {
		bad = append(bad, n+": not a JPEG, PNG or WebP photo")
	}
	for _, p := range paths {
		pv, err := app.LoadPhoto(p, photoThumbSide)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		ok = append(ok, pv)
	}
	return ok, bad
}

// showPhotos adds the decoded photos and says why the others are not used.
func (t *TrainSheet) showPhotos(ok []app.PhotoPreview, bad []string) {
	for _, pv := range ok {
		if len(t.photos) >= app.MaxTrainPhotos {
			bad = append(bad, fmt.Sprintf("%s: at most %d photos", filepath.Base(pv.Path), app.MaxTrainPhotos))
			continue
		}
		if t.has(pv.Path) {
			continue
		}
		t.addPhoto(pv)
	}
	switch {
	case len(bad) > 0:
		t.message.SetText("Not used: " + strings.Join(bad, "; "))
	case len(t.photos) > 0:
		t.message.SetText(fmt.Sprintf("%d photos. The bright square is what training sees: drag it, drag a corner or scroll to resize it, or tap Crop.", len(t.photos)))
	}
	t.validate()
}

func (t *TrainSheet) has(path string) bool {
	for _, p := range t.photos {
		if p.preview.Path == path {
			return true
		}
	}
	return false
}

// addPhoto shows one photo with its crop, which dragging moves and
// resizes, and a button that cycles it through preset positions.
func (t *TrainSheet) addPhoto(pv app.PhotoPreview) {
	sp := &sheetPhoto{preview: pv}
	if c, ok := t.crops[pv.Path]; ok {
		for i := range cropNames { // the crop of a continued run
			if sp.crop = i; sp.cropBox() == c {
				break
			}
		}
		if sp.cropBox() != c {
			sp.crop, sp.custom = -1, c
		}
	}
	sp.view = newCropView(pv.Size, pv.Thumb, sp.cropBox())
	sp.view.OnChanged = func(r image.Rectangle) { t.onCropDragged(sp, r) }
	sp.button = widget.NewButton("", nil)
	sp.button.OnTapped = func() { sp.crop = (sp.crop + 1) % 3; t.showCrop(sp) }
	remove := widget.NewButton("✕", nil)
	cell := container.NewBorder(nil, container.NewBorder(nil, nil, nil, remove, sp.button), nil, nil, sp.view)
	remove.OnTapped = func() {
		for i, p := range t.photos {
			if p == sp {
				t.photos = append(t.photos[:i], t.photos[i+1:]...)
			}
		}
		t.grid.Remove(cell)
		t.validate()
	}
	t.photos = append(t.photos, sp)
	t.showCrop(sp)
	t.grid.Add(cell)
}

// validate shows what is wrong with the fields and enables Start when
// nothing is.
func (t *TrainSheet) validate() {
	if t.name == nil {
		return
	}
	ok := len(t.photos) > 0 && !t.running
	t.nameMsg.SetText("")
	if n := t.name.Text; n != "" {
		if err := t.training.CheckName(n); err != nil {
			t.nameMsg.SetText(err.Error())
			ok = false
		}
	} else {
		ok = false
	}
	t.wordMsg.SetText("")
	if w := t.word.Text; w != "" {
		if _, err := t.training.CheckWord(w); err != nil {
			t.wordMsg.SetText(err.Error())
			ok = false
		}
	} else {
		ok = false
	}
	if ok {
		t.start.Enable()
	} else {
		t.start.Disable()
	}
}

// request is the sheet's training request.
func (t *TrainSheet) request() app.TrainRequest {
	r := app.TrainRequest{Name: t.name.Text, Word: t.word.Text, Preset: app.PresetQuick}
	if t.preset.Selected == presetLabels[app.PresetPaper] {
		r.Preset = app.PresetPaper
	}
	r.Steps, _ = strconv.Atoi(strings.TrimSpace(t.steps.Text))
	r.Size, _ = strconv.Atoi(strings.TrimSpace(t.size.Text))
	for _, p := range t.photos {
		r.Photos = append(r.Photos, app.TrainPhoto{Path: p.preview.Path, Crop: p.cropBox()})
	}
	return r
}

// onStart validates and starts the run off the UI thread (Start reads the
// photos once more).
func (t *TrainSheet) onStart() {
	if optionalCount(t.steps.Text) != nil || optionalCount(t.size.Text) != nil {
		t.message.SetText("Steps and size must be positive whole numbers, or empty.")
		return
	}
	r := t.request()
	t.setRunning(true)
	t.sample.Hide()
	t.samples.clear()
	t.stage.SetText("Starting…")
	go func() {
		_, err := t.training.Start(r)
		if err != nil {
			t.m.do(func() {
				t.setRunning(false)
				t.stage.SetText("")
				t.message.SetText("Cannot start: " + err.Error())
			})
		}
	}()
}

func (t *TrainSheet) onCancel() {
	t.training.Cancel()
	t.cancel.Disable()
}

func (t *TrainSheet) setRunning(on bool) {
	t.running = on
	if on {
		t.start.Disable()
		t.cancel.Enable()
		t.cancel.Show()
	} else {
		t.cancel.Hide()
	}
	t.validate()
}

// onEvent follows the run; it is called on the training goroutine.
func (t *TrainSheet) onEvent(e app.TrainingEvent) {
	t.m.do(func() {
		if t.name == nil {
			return
		}
		t.stage.SetText(e.Label)
		t.progress.SetValue(e.Fraction())
		if e.Losses != nil {
			t.spark.SetValues(e.Losses)
		}
		t.eta.SetText("")
		if e.ETA > 0 {
			t.eta.SetText("about " + e.ETA.Round(time.Second).String() + " left")
		}
		if e.StepSample != nil {
			t.samples.add(e.StepSample)
		}
		if e.SampleEvery > 0 {
			t.samples.setEvery(e.SampleEvery)
		}
		if !e.Done {
			return
		}
		t.setRunning(false)
		t.unfinished.RemoveAll()
		go t.findUnfinished()
		switch {
		case e.Err == nil:
			if e.Sample != nil {
				t.sample.Image = e.Sample
				t.sample.Show()
				t.sample.Refresh()
			}
			t.message.SetText(fmt.Sprintf("Concept <%s> is in the library: write <%s> in a prompt to use it.", e.Concept, e.Concept))
			t.start.SetText("Start training")
		case errors.Is(e.Err, context.Canceled):
			t.message.SetText("Training stopped. Start again with the same photos, name and word to continue where it stopped.")
			t.start.SetText("Continue training")
		case app.IsNotLearned(e.Err):
			t.message.SetText(e.Err.Error())
			t.start.SetText("Continue training")
		default:
			t.message.SetText("Training failed: " + e.Err.Error())
		}
		if t.window == nil { // closed meanwhile: say it in the main window
			dialog.ShowInformation("Training", t.message.Text, t.m.window)
		}
	})
}
