package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// Library is the concept library panel on the left of the main window. It
// lists the user's concepts; until concepts exist it shows an empty state.
type Library struct {
	title *widget.Label
	empty *widget.Label
}

func newLibrary() *Library {
	return &Library{}
}

func (l *Library) build() fyne.CanvasObject {
	l.title = widget.NewLabelWithStyle("Concepts", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	l.empty = widget.NewLabel("No concepts yet. Concepts you train will be listed here.")
	l.empty.Wrapping = fyne.TextWrapWord
	l.empty.Importance = widget.LowImportance
	header := container.NewVBox(l.title, widget.NewSeparator())
	return container.NewBorder(header, nil, nil, nil, container.NewVBox(l.empty))
}
