package ui

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/export"
)

// modelExtensions are what Fyne's open dialog lists (model_index.json
// stands for a diffusers folder).
var modelExtensions = []string{".safetensors", ".ckpt", ".json"}

// photoExtensions are dropped files meant for training.
var photoExtensions = map[string]bool{".jpg": true, ".jpeg": true, ".webp": true, ".bmp": true, ".tif": true, ".tiff": true}

func isCancel(err error) bool { return errors.Is(err, context.Canceled) }

func renderCaption(c export.Composition) string {
	return fmt.Sprintf("Final render %d×%d, seed %d, %d steps, %s", c.Width, c.Height, c.Seed, c.Steps, app.SamplerLabel(c.Sampler))
}

func (m *MainWindow) showError(title string, err error) {
	d := dialog.NewError(fmt.Errorf("%s: %w", title, err), m.window)
	d.Show()
}

func (m *MainWindow) showInfo(title, msg string) {
	dialog.ShowInformation(title, msg, m.window)
}

// onOpenModel asks for a model (Ctrl/Cmd-O): the native dialog off the UI
// thread when the program gave one, else Fyne's.
func (m *MainWindow) onOpenModel() {
	if m.opt.PickModel == nil {
		m.openModelFyne()
		return
	}
	go func() {
		path, ok, err := m.opt.PickModel()
		m.do(func() {
			switch {
			case err != nil:
				m.openModelFyne()
			case ok:
				m.openModel(path)
			}
		})
	}()
}

func (m *MainWindow) openModelFyne() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil {
			m.showError("Cannot open the model", err)
			return
		}
		if r == nil {
			return // cancelled
		}
		path := r.URI().Path()
		r.Close()
		m.openModel(path)
	}, m.window)
	d.SetFilter(storage.NewExtensionFileFilter(modelExtensions))
	d.Show()
}

// openModel starts loading path.
func (m *MainWindow) openModel(path string) {
	m.preview.setModel(false, filepath.Base(app.ModelPath(path)))
	m.studio.OpenModel(path)
}

// onUseDefaultModel goes back to the built-in default model (File ▸ Use
// default model).
func (m *MainWindow) onUseDefaultModel() {
	m.preview.setModel(false, m.studio.Models.DefaultName())
	m.studio.OpenDefaultModel()
}

// onDropped handles files dropped on the window: a PNG restores its
// settings, a model file or folder is opened, photos are for training.
func (m *MainWindow) onDropped(_ fyne.Position, uris []fyne.URI) {
	if len(uris) == 0 {
		return
	}
	if len(uris) > 1 || photoExtensions[strings.ToLower(filepath.Ext(uris[0].Path()))] {
		m.onDroppedPhotos(uris)
		return
	}
	path := uris[0].Path()
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case uris[0].Scheme() != "file":
		m.showInfo("Cannot use this", "Drop a file from this computer: a model, or a PNG made with Perfusion Studio.")
	case ext == ".png":
		go func() {
			c, err := m.studio.ImportPNG(path)
			m.do(func() {
				if errors.Is(err, export.ErrNoSettings) {
					m.dropPhotos([]string{path}, nil) // a plain PNG: a photo to train on
					return
				}
				if err != nil {
					m.showError("Cannot restore settings from "+filepath.Base(path), err)
					return
				}
				m.restore(c)
			})
		}()
	default:
		m.openModel(path)
	}
}

// restore shows c in the composer and previews it.
func (m *MainWindow) restore(c export.Composition) {
	m.composer.setComposition(c)
	m.studio.SetStatus(fmt.Sprintf("Restored settings: seed %d, %d steps", c.Seed, c.Steps))
	m.onChange()
}

// onExport saves the last final render as a PNG with its settings
// (Ctrl/Cmd-E).
func (m *MainWindow) onExport() {
	if m.lastImage == nil {
		m.showInfo("Nothing to export yet", "Render an image first (Render, or Ctrl+Enter).")
		return
	}
	img, c := m.lastImage, m.lastComp
	name := export.Composition{Model: c.Model}
	suggested := app.BatchFileName(name, c.Seed)
	save := func(path string) {
		go func() {
			err := m.studio.ExportPNG(path, img, c, m.studio.ExportOptions())
			m.do(func() {
				if err != nil {
					m.showError("Cannot export the PNG", err)
					return
				}
				m.studio.SetStatus("Exported " + path)
			})
		}()
	}
	if m.opt.PickSavePNG != nil {
		go func() {
			path, ok, err := m.opt.PickSavePNG(suggested)
			m.do(func() {
				switch {
				case err != nil:
					m.savePNGFyne(suggested, save)
				case ok:
					save(path)
				}
			})
		}()
		return
	}
	m.savePNGFyne(suggested, save)
}

func (m *MainWindow) savePNGFyne(suggested string, save func(path string)) {
	d := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil {
			m.showError("Cannot export the PNG", err)
			return
		}
		if w == nil {
			return
		}
		path := w.URI().Path()
		w.Close() // the export replaces the file atomically
		save(path)
	}, m.window)
	d.SetFileName(suggested)
	d.Show()
}

// onExportBatch asks for a count and a folder and renders that many seeds.
func (m *MainWindow) onExportBatch() {
	c, err := m.composer.composition()
	if err != nil {
		m.showError("Cannot export", err)
		return
	}
	count := widget.NewEntry()
	count.SetText("4")
	count.Validator = func(s string) error {
		if n, err := strconv.Atoi(s); err != nil || n < 1 || n > 1000 {
			return errors.New("1 to 1000")
		}
		return nil
	}
	items := []*widget.FormItem{widget.NewFormItem("Images", count)}
	dialog.ShowForm(fmt.Sprintf("Export seeds %d onwards", c.Seed), "Choose folder…", "Cancel", items, func(ok bool) {
		if !ok {
			return
		}
		n, _ := strconv.Atoi(count.Text)
		dialog.ShowFolderOpen(func(dir fyne.ListableURI, err error) {
			if err != nil || dir == nil {
				return
			}
			m.studio.ExportBatch(c, n, dir.Path())
		}, m.window)
	}, m.window)
}
