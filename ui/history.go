package ui

import (
	"fmt"
	"image"
	"image/png"
	"os"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app/history"
)

// thumbSide is the history thumbnails' side in pixels.
const thumbSide = 64

// maxHistoryShown bounds how many entries the dialog lists (and decodes).
const maxHistoryShown = 200

// HistoryDialog lists the kept final renders, newest first; choosing one
// restores its settings in the composer.
type HistoryDialog struct {
	m       *MainWindow
	entries []history.Entry
	thumbs  []image.Image
	list    *widget.List
	dlg     dialog.Dialog
}

// onHistory reads the history off the UI thread, then shows the dialog.
func (m *MainWindow) onHistory() {
	if m.studio.History == nil {
		m.showInfo("No history", "Renders are not kept: the app has no data folder (see File ▸ Settings…).")
		return
	}
	go func() {
		entries, err := m.studio.History.List()
		if len(entries) > maxHistoryShown {
			entries = entries[:maxHistoryShown]
		}
		thumbs := make([]image.Image, len(entries))
		for i, e := range entries {
			thumbs[i] = thumbnail(e.Image)
		}
		m.do(func() {
			if err != nil && len(entries) == 0 {
				m.showError("Cannot read the history", err)
				return
			}
			m.history = &HistoryDialog{m: m, entries: entries, thumbs: thumbs}
			m.history.show()
		})
	}()
}

func (h *HistoryDialog) show() {
	var content fyne.CanvasObject
	if len(h.entries) == 0 {
		content = widget.NewLabel("No renders yet. Every final render (Ctrl+Enter) is kept here.")
	} else {
		h.list = widget.NewList(func() int { return len(h.entries) }, h.newRow, h.updateRow)
		h.list.OnSelected = h.onSelected
		content = h.list
	}
	h.dlg = dialog.NewCustom("History", "Close", content, h.m.window)
	h.dlg.Resize(fyne.NewSize(640, 480))
	h.dlg.Show()
}

func (h *HistoryDialog) newRow() fyne.CanvasObject {
	img := canvas.NewImageFromImage(nil)
	img.FillMode = canvas.ImageFillContain
	img.SetMinSize(fyne.NewSize(thumbSide, thumbSide))
	label := widget.NewLabel("")
	label.Truncation = fyne.TextTruncateEllipsis
	return container.NewBorder(nil, nil, img, nil, label)
}

func (h *HistoryDialog) updateRow(id widget.ListItemID, row fyne.CanvasObject) {
	c := row.(*fyne.Container)
	label := c.Objects[0].(*widget.Label)
	img := c.Objects[1].(*canvas.Image)
	e := h.entries[id]
	prompt := e.Composition.Prompt
	if prompt == "" {
		prompt = "(no prompt)"
	}
	label.SetText(fmt.Sprintf("%s  %s — seed %d, %d steps", e.Time.Local().Format("Jan 2 15:04"), prompt, e.Composition.Seed, e.Composition.Steps))
	img.Image = h.thumbs[id]
	img.Refresh()
}

// onSelected restores the chosen entry's settings and closes the dialog.
func (h *HistoryDialog) onSelected(id widget.ListItemID) {
	h.m.restore(h.entries[id].Composition)
	h.dlg.Hide()
}

// thumbnail decodes the PNG at path and shrinks it to thumbSide (nearest
// pixel: enough for recognising an image); nil if it cannot be read.
func thumbnail(path string) image.Image {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	src, err := png.Decode(f)
	if err != nil {
		return nil
	}
	b := src.Bounds()
	scale := max(b.Dx(), b.Dy())
	if scale <= 0 {
		return nil
	}
	w, h := max(b.Dx()*thumbSide/scale, 1), max(b.Dy()*thumbSide/scale, 1)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			dst.Set(x, y, src.At(b.Min.X+x*b.Dx()/w, b.Min.Y+y*b.Dy()/h))
		}
	}
	return dst
}
