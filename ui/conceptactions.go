package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/widget"

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
