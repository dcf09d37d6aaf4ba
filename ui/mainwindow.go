// Package ui holds Perfusion Studio's Fyne screens. Each screen or panel is
// one struct in one file, with a build method that makes its widgets and
// named onX handlers. Screens talk only to the app package's services; they
// never start the application or open native dialogs (the program injects
// those through Options), so every screen builds and is tested headless
// with fyne.io/fyne/v2/test.
//
// Service hooks run on background goroutines; a screen applies what they
// report through its injected Do function (fyne.Do by default), never by
// touching widgets directly.
package ui

import (
	"image"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/preview"
)

// Default main window size, in Fyne units.
const (
	defaultWidth  = 1200
	defaultHeight = 780
)

// Options configures a MainWindow. The zero value is usable.
type Options struct {
	// Do runs fn on the UI thread. Nil means fyne.Do; tests pass their own.
	Do func(fn func())
	// Version is shown at the right end of the status bar when not empty.
	Version string
	// PickModel, when set, shows the platform's native open dialog for a
	// model and returns the chosen path, or ok false when the user
	// cancelled. It blocks, so it is called off the UI thread. An error
	// means no native dialog is available: Fyne's own dialog is shown.
	PickModel func() (path string, ok bool, err error)
	// PickSavePNG, when set, shows the native save dialog for a PNG with
	// the suggested file name; same rules as PickModel.
	PickSavePNG func(suggested string) (path string, ok bool, err error)
	// PickConcept and PickSaveConcept are the same for importing and
	// exporting a .concept file.
	PickConcept     func() (path string, ok bool, err error)
	PickSaveConcept func(suggested string) (path string, ok bool, err error)
}

// MainWindow is the studio's single window: the concept library on the left,
// the preview in the centre, the composer below it and the status bar along
// the bottom.
type MainWindow struct {
	window fyne.Window
	studio *app.Studio
	do     func(func())
	opt    Options

	library  *Library
	preview  *Preview
	composer *Composer
	status   *StatusBar
	menus    *menus
	history  *HistoryDialog // the last one shown
	// sweepDialog is the last β sweep shown.
	sweepDialog dialog.Dialog
	sweepPicks  []*widget.Button // its "β …" buttons

	trainSheet *TrainSheet // made on the first drop of photos

	// modelPath is the loaded model's path; sizes the image size last
	// used with each model loaded in this session, by path.
	modelPath string
	sizes     map[string][2]int

	// The last final render, what Export PNG writes.
	lastImage *image.RGBA
	lastComp  export.Composition
}

// NewMainWindow fills w with the studio's layout, wired to studio, and gives
// it its default size, menus, shortcuts and drop handler. The prompt has the
// keyboard focus. The caller shows the window.
func NewMainWindow(w fyne.Window, studio *app.Studio, opt Options) *MainWindow {
	do := opt.Do
	if do == nil {
		do = fyne.Do
	}
	m := &MainWindow{window: w, studio: studio, do: do, opt: opt, sizes: map[string][2]int{}}
	m.library = newLibrary(m.onInsertConcept, m.onConceptAction, m.onImportConcept)
	m.preview = newPreview(m.onOpenModel)
	m.composer = newComposer(m.onChange, m.onRender, m.onExport)
	m.composer.lastSeed = studio.LastSeed
	m.composer.concepts.sweep = m.onSweep
	m.status = newStatusBar(studio, do, opt.Version)
	w.SetContent(m.build())
	w.Resize(fyne.NewSize(defaultWidth, defaultHeight))

	m.composer.setComposition(studio.DefaultComposition())
	p, info := studio.Models.Current()
	m.preview.setModel(p != nil, studio.Models.Loading())
	if p != nil {
		m.modelLoaded(info)
	}
	m.menus = newMenus(m)
	m.menus.install()
	w.SetOnDropped(m.onDropped)

	m.refreshLibrary()
	studio.Concepts.OnChange(func() { m.do(m.refreshLibrary) })
	studio.Models.OnEvent(m.onModelEvent)
	studio.OnPreview(m.onPreviewFrame)
	studio.OnRender(m.onRenderResult)
	studio.OnSweep(m.onSweepResult)
	w.Canvas().Focus(m.composer.prompt)
	return m
}

// build lays the panels out: library | (preview over composer), status bar below.
func (m *MainWindow) build() fyne.CanvasObject {
	work := container.NewVSplit(m.preview.build(), m.composer.build())
	work.Offset = 0.6
	body := container.NewHSplit(m.library.build(), work)
	body.Offset = 0.2
	return container.NewBorder(nil, m.status.build(), nil, nil, body)
}

// onChange runs on every edit of the composition: it schedules a preview.
func (m *MainWindow) onChange() {
	c, err := m.composer.composition()
	if err != nil {
		return // the field shows its own validation error
	}
	c = m.syncConcepts(c)
	m.studio.Compose(c)
}

// onModelEvent follows model loading; it runs on the loading goroutine.
func (m *MainWindow) onModelEvent(e app.ModelEvent) {
	if e.Err == nil && !e.Loaded && e.Fraction > 0 {
		return // progress: the status bar shows it
	}
	m.do(func() {
		switch {
		case e.Loaded:
			m.preview.setModel(true, "")
			m.modelLoaded(e.Info)
			m.onChange()
		case e.Err != nil:
			p, _ := m.studio.Models.Current()
			m.preview.setModel(p != nil, "")
			if !isCancel(e.Err) {
				m.showError("Cannot open the model", e.Err)
			}
		default:
			loading := app.ModelPath(e.Path)
			if e.Default {
				loading = e.Name
			}
			m.preview.setModel(false, loading)
		}
	})
}

// modelLoaded updates what shows the current model, and sets the image
// size to the model's native size, or to the size last used with it.
func (m *MainWindow) modelLoaded(info app.ModelInfo) {
	m.window.SetTitle(fyne.CurrentApp().Metadata().Name + " — " + info.Name)
	if m.menus != nil {
		m.menus.refreshRecent()
	}
	if info.NativeSize <= 0 {
		return
	}
	if m.modelPath != "" {
		if c, err := m.composer.composition(); err == nil {
			m.sizes[m.modelPath] = [2]int{c.Width, c.Height}
		}
	}
	m.modelPath = info.Path
	size, ok := m.sizes[info.Path]
	if !ok {
		size = [2]int{info.NativeSize, info.NativeSize}
	}
	m.composer.setSizes(info.NativeSize, info.SizeMultiple, size[0], size[1])
}

// onPreviewFrame shows a live preview frame; it runs on the job worker.
func (m *MainWindow) onPreviewFrame(f preview.Frame) {
	m.do(func() { m.preview.showFrame(f) })
}

// onRender starts a final render of the composition (Ctrl/Cmd-Enter).
func (m *MainWindow) onRender() {
	c, err := m.composer.composition()
	if err != nil {
		m.showError("Cannot render", err)
		return
	}
	if p, _ := m.studio.Models.Current(); p == nil {
		m.showInfo("No model", "Open a Stable Diffusion 1.x model first (File ▸ Open model…).")
		return
	}
	if seed := m.studio.RenderSeed(m.composer.mode(), c.Seed); seed != c.Seed {
		c.Seed = seed
		m.composer.showSeed(seed)
	}
	m.studio.Render(m.syncConcepts(c))
}

// onRenderResult shows a finished render; it runs on the job worker.
func (m *MainWindow) onRenderResult(r app.RenderResult) {
	if r.Err != nil {
		return // the status bar says why
	}
	m.do(func() {
		m.lastImage, m.lastComp = r.Image, r.Composition
		m.preview.showRender(r.Image, renderCaption(r.Composition))
	})
}
