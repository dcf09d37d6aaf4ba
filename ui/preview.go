package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// Preview is the centre panel where generated images will be shown. Until an
// image exists it shows an empty frame.
type Preview struct {
	frame *canvas.Rectangle
	empty *widget.Label
}

func newPreview() *Preview {
	return &Preview{}
}

func (p *Preview) build() fyne.CanvasObject {
	p.frame = canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	p.frame.StrokeColor = theme.Color(theme.ColorNameSeparator)
	p.frame.StrokeWidth = 1
	p.frame.CornerRadius = theme.InputRadiusSize()
	p.frame.SetMinSize(fyne.NewSize(256, 256))
	p.empty = widget.NewLabelWithStyle("No image yet", fyne.TextAlignCenter, fyne.TextStyle{})
	p.empty.Importance = widget.LowImportance
	return container.NewPadded(container.NewStack(p.frame, container.NewCenter(p.empty)))
}
