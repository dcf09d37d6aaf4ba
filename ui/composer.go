package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// Composer is the panel below the preview: the prompt on the left and one
// strength slider per concept in use on the right.
type Composer struct {
	prompt        *widget.Entry
	slidersTitle  *widget.Label
	slidersEmpty  *widget.Label
	slidersColumn *fyne.Container // one slider row per concept, later
}

func newComposer() *Composer {
	return &Composer{}
}

func (c *Composer) build() fyne.CanvasObject {
	c.prompt = widget.NewMultiLineEntry()
	c.prompt.SetPlaceHolder("Describe the image…")
	c.prompt.Wrapping = fyne.TextWrapWord
	c.prompt.SetMinRowsVisible(3)
	promptTitle := widget.NewLabelWithStyle("Prompt", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	promptBox := container.NewBorder(promptTitle, nil, nil, nil, c.prompt)

	c.slidersTitle = widget.NewLabelWithStyle("Concept strength", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	c.slidersEmpty = widget.NewLabel("Concepts used in the prompt get a strength slider here.")
	c.slidersEmpty.Wrapping = fyne.TextWrapWord
	c.slidersEmpty.Importance = widget.LowImportance
	c.slidersColumn = container.NewVBox(c.slidersEmpty)
	slidersBox := container.NewBorder(c.slidersTitle, nil, nil, nil, container.NewVScroll(c.slidersColumn))

	split := container.NewHSplit(promptBox, slidersBox)
	split.Offset = 0.62
	return container.NewPadded(split)
}
