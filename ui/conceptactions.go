package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/export"
)

// refreshLibrary shows the studio's concepts in the library panel.
func (m *MainWindow) refreshLibrary() {
	list, err := m.studio.Concepts.List()
	m.library.setConcepts(list, err)
}

// syncConcepts gives c the concepts its prompt writes <name> (keeping the
// sliders' gates, new ones at their file's defaults) and shows their rows.
func (m *MainWindow) syncConcepts(c export.Composition) export.Composition {
	c = m.studio.Concepts.Sync(c)
	m.composer.concepts.set(c.Concepts)
	return c
}

// onInsertConcept adds <name> to the prompt (a tapped library card).
func (m *MainWindow) onInsertConcept(name string) {
	m.composer.insertConcept(name)
	m.window.Canvas().Focus(m.composer.prompt)
}

// onConceptAction runs a card's menu action.
func (m *MainWindow) onConceptAction(action, name string) {
	c := m.studio.Concepts
	switch action {
	case "rename":
		entry := widget.NewEntry()
		entry.SetText(name)
		dialog.ShowForm("Rename concept", "Rename", "Cancel", []*widget.FormItem{widget.NewFormItem("Name", entry)},
			func(ok bool) {
				if ok && entry.Text != name {
					m.renameConcept(name, entry.Text)
				}
			}, m.window)
	case "duplicate":
		if n, err := c.Duplicate(name); err != nil {
			m.showError("Cannot duplicate "+name, err)
		} else {
			m.studio.SetStatus(fmt.Sprintf("Duplicated %s as %s", name, n))
		}
	case "export":
		m.exportConcept(name)
	case "delete":
		m.deleteConcept(name)
	}
}

func (m *MainWindow) renameConcept(old, new string) {
	if err := m.studio.Concepts.Rename(old, new); err != nil {
		m.showError("Cannot rename "+old, err)
		return
	}
	m.studio.SetStatus(fmt.Sprintf("Renamed %s to %s: prompts now write <%s>", old, new, new))
}

func (m *MainWindow) deleteConcept(name string) {
	if err := m.studio.Concepts.Delete(name); err != nil {
		m.showError("Cannot delete "+name, err)
		return
	}
	m.studio.SetStatus(fmt.Sprintf("Deleted %s (Ctrl/Cmd-Z brings it back)", name))
}

// onUndoDelete brings back the last deleted concept (Ctrl/Cmd-Z).
func (m *MainWindow) onUndoDelete() {
	if !m.studio.Concepts.CanUndo() {
		return
	}
	name, err := m.studio.Concepts.Undo()
	if err != nil {
		m.showError("Cannot undo the delete", err)
		return
	}
	m.studio.SetStatus("Restored " + name)
}

// exportConcept asks where to write the concept and writes it.
func (m *MainWindow) exportConcept(name string) {
	write := func(path string) {
		if err := m.studio.Concepts.Export(name, path); err != nil {
			m.showError("Cannot export "+name, err)
			return
		}
		m.studio.SetStatus(fmt.Sprintf("Exported %s to %s", name, path))
	}
	if m.opt.PickSaveConcept != nil {
		go func() {
			path, ok, err := m.opt.PickSaveConcept(name + ".concept")
			m.do(func() {
				switch {
				case err != nil:
					m.exportConceptFyne(name, write)
				case ok:
					write(path)
				}
			})
		}()
		return
	}
	m.exportConceptFyne(name, write)
}

func (m *MainWindow) exportConceptFyne(name string, write func(string)) {
	d := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil || w == nil {
			return
		}
		path := w.URI().Path()
		w.Close()
		write(path)
	}, m.window)
	d.SetFileName(name + ".concept")
	d.Show()
}

// onImportConcept asks for a .concept file and adds it to the library.
func (m *MainWindow) onImportConcept() {
	if m.opt.PickConcept != nil {
		go func() {
			path, ok, err := m.opt.PickConcept()
			m.do(func() {
				switch {
				case err != nil:
					m.importConceptFyne()
				case ok:
					m.importConcept(path)
				}
			})
		}()
		return
	}
	m.importConceptFyne()
}

func (m *MainWindow) importConceptFyne() {
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		path := r.URI().Path()
		r.Close()
		m.importConcept(path)
	}, m.window)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".concept"}))
	d.Show()
}

func (m *MainWindow) importConcept(path string) {
	name, err := m.studio.Concepts.Import(path)
	if err != nil {
		m.showError("Cannot import the concept", err)
		return
	}
	m.studio.SetStatus(fmt.Sprintf("Imported %s: write <%s> in a prompt to use it", name, name))
}

// sweepSize is how many β values a sweep renders.
const sweepSize = 5

// onSweep renders a strip of β values for concept name on the current
// seed (a row's "Sweep β…" button).
func (m *MainWindow) onSweep(name string) {
	c, err := m.composer.composition()
	if err != nil {
		m.showError("Cannot sweep", err)
		return
	}
	if p, _ := m.studio.Models.Current(); p == nil {
		m.showInfo("No model", "Open a Stable Diffusion 1.x model first (File ▸ Open model…).")
		return
	}
	m.studio.Sweep(m.syncConcepts(c), name, app.SweepBetas(sweepSize))
}

// onSweepResult shows a finished sweep; it runs on the job worker.
func (m *MainWindow) onSweepResult(r app.SweepResult) {
	if r.Err != nil {
		return // the status bar says why
	}
	m.do(func() { m.showSweep(r) })
}

// showSweep shows the strip; picking an image sets that β.
func (m *MainWindow) showSweep(r app.SweepResult) {
	var d dialog.Dialog
	var picks []*widget.Button
	cells := make([]fyne.CanvasObject, len(r.Images))
	for i, img := range r.Images {
		ci := canvas.NewImageFromImage(img)
		ci.FillMode = canvas.ImageFillContain
		ci.SetMinSize(fyne.NewSize(128, 128))
		b := r.Betas[i]
		pick := widget.NewButton(fmt.Sprintf("β %.2f", b), func() {
			m.composer.concepts.setBeta(r.Concept, b)
			d.Hide()
		})
		cells[i] = container.NewBorder(nil, pick, nil, nil, ci)
		picks = append(picks, pick)
	}
	strip := container.NewGridWithColumns(len(cells), cells...)
	caption := widget.NewLabel("Left: more likeness of <" + r.Concept + ">; right: more of the prompt. Pick one to use its β.")
	d = dialog.NewCustom("Sweep of β for <"+r.Concept+">", "Close", container.NewBorder(caption, nil, nil, nil, strip), m.window)
	m.sweepDialog, m.sweepPicks = d, picks
	d.Show()
}
