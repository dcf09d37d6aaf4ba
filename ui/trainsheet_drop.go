package ui

import (
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
)

// photoDropExtensions are the files a drop of several sends to training.
var photoDropExtensions = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".webp": true}

// onDroppedPhotos opens the training sheet with the dropped images; other
// files are named in a message.
func (m *MainWindow) onDroppedPhotos(uris []fyne.URI) {
	var imgs, other []string
	for _, u := range uris {
		p := u.Path()
		if u.Scheme() == "file" && photoDropExtensions[strings.ToLower(filepath.Ext(p))] {
			imgs = append(imgs, p)
		} else {
			other = append(other, filepath.Base(p))
		}
	}
	m.dropPhotos(imgs, other)
}

// dropPhotos decodes dropped photos off the UI thread, then adds them to
// the training sheet. When none is usable and the sheet holds none, the
// main window says why and no sheet opens.
func (m *MainWindow) dropPhotos(paths, skipped []string) {
	go func() {
		ok, bad := loadPhotos(paths, skipped)
		m.do(func() {
			if len(ok) == 0 && (m.trainSheet == nil || len(m.trainSheet.photos) == 0) {
				m.showInfo("Cannot train on these files", "To teach a concept, drop JPEG, PNG or WebP photos.\n\n"+strings.Join(bad, "\n"))
				return
			}
			m.openTrainSheet(nil)
			m.trainSheet.showPhotos(ok, bad)
		})
	}()
}

// onAddPhotos (File ▸ Add photos…) opens the training sheet and a file
// dialog over it; each chosen photo is added.
func (m *MainWindow) onAddPhotos() {
	m.openTrainSheet(nil)
	d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		path := r.URI().Path()
		r.Close()
		m.trainSheet.addPhotos([]string{path})
	}, m.trainSheet.window)
	d.SetFilter(storage.NewExtensionFileFilter([]string{".jpg", ".jpeg", ".png", ".webp"}))
	d.Show()
}
