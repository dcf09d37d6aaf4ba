package ui

import (
	"bytes"
	"fmt"
	"image"
	"image/png"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// cardThumbSide is a card's thumbnail side, in Fyne units.
const cardThumbSide = 48

// Library is the concept library panel on the left of the main window: a
// card per concept (thumbnail, name, superordinate word, size), greyed
// with the reason when it cannot be used with the loaded model. Tapping a
// card inserts <name> in the prompt; its menu button renames, duplicates,
// exports or deletes it; Import… adds a .concept file.
type Library struct {
	onInsert func(name string)
	onAction func(action, name string) // "rename", "duplicate", "export", "delete"
	onImport func()

	title  *widget.Label
	empty  *widget.Label
	cards  *fyne.Container
	list   []app.ConceptInfo
	errMsg *widget.Label
}

func newLibrary(onInsert func(string), onAction func(action, name string), onImport func()) *Library {
	return &Library{onInsert: onInsert, onAction: onAction, onImport: onImport}
}

func (l *Library) build() fyne.CanvasObject {
	l.title = widget.NewLabelWithStyle("Concepts", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.empty = widget.NewLabel("No concepts yet. Concepts you train or import will be listed here.")
	l.empty.Wrapping = fyne.TextWrapWord
	l.empty.Importance = widget.LowImportance
	l.errMsg = widget.NewLabel("")
	l.errMsg.Wrapping = fyne.TextWrapWord
	l.errMsg.Importance = widget.DangerImportance
	l.errMsg.Hide()
	imp := widget.NewButtonWithIcon("Import…", theme.ContentAddIcon(), func() {
		if l.onImport != nil {
			l.onImport()
		}
	})
	l.cards = container.NewVBox(l.empty)
	header := container.NewVBox(container.NewBorder(nil, nil, nil, imp, l.title), widget.NewSeparator(), l.errMsg)
	return container.NewBorder(header, nil, nil, nil, container.NewVScroll(l.cards))
}

// setConcepts shows list (err: why the library cannot be listed).
func (l *Library) setConcepts(list []app.ConceptInfo, err error) {
	l.list = list
	if err != nil {
		l.errMsg.SetText(err.Error())
		l.errMsg.Show()
	} else {
		l.errMsg.Hide()
	}
	objs := make([]fyne.CanvasObject, 0, len(list)+1)
	if len(list) == 0 {
		objs = append(objs, l.empty)
	}
	for _, c := range list {
		objs = append(objs, l.card(c))
	}
	l.cards.Objects = objs
	l.cards.Refresh()
}

// card is one concept's card.
func (l *Library) card(c app.ConceptInfo) fyne.CanvasObject {
	var thumb fyne.CanvasObject = canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	if img := decodeThumb(c.Thumbnail); img != nil {
		ci := canvas.NewImageFromImage(img)
		ci.FillMode = canvas.ImageFillContain
		thumb = ci
	}
	thumbBox := container.NewGridWrap(fyne.NewSize(cardThumbSide, cardThumbSide), thumb)
	name := widget.NewButton(app.Placeholder(c.Name), func() {
		if l.onInsert != nil {
			l.onInsert(c.Name)
		}
	})
	name.Alignment = widget.ButtonAlignLeading
	name.Importance = widget.LowImportance
	detail := widget.NewLabel(fmt.Sprintf("%s · %s", orDash(c.Superclass), sizeText(c.Size)))
	detail.Importance = widget.LowImportance
	info := container.NewVBox(name, detail)
	if c.Disabled != "" {
		name.Disable()
		reason := widget.NewLabel(c.Disabled)
		reason.Wrapping = fyne.TextWrapWord
		reason.Importance = widget.WarningImportance
		info.Add(reason)
	}
	var menuBtn *widget.Button
	menuBtn = widget.NewButtonWithIcon("", theme.MoreVerticalIcon(), func() {
		items := []*fyne.MenuItem{}
		for _, a := range []struct{ label, action string }{
			{"Rename…", "rename"}, {"Duplicate", "duplicate"}, {"Export…", "export"}, {"Delete", "delete"},
		} {
			items = append(items, fyne.NewMenuItem(a.label, func() { l.onAction(a.action, c.Name) }))
		}
		cv := fyne.CurrentApp().Driver().CanvasForObject(menuBtn)
		if cv == nil {
			return
		}
		pos := fyne.CurrentApp().Driver().AbsolutePositionForObject(menuBtn)
		widget.ShowPopUpMenuAtPosition(fyne.NewMenu("", items...), cv, pos.AddXY(0, menuBtn.Size().Height))
	})
	return container.NewBorder(nil, widget.NewSeparator(), thumbBox, menuBtn, info)
}

func decodeThumb(b []byte) image.Image {
	if len(b) == 0 {
		return nil
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return img
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// sizeText is a file size for people.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", (n+512)>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
