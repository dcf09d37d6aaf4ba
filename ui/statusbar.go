package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// StatusBar runs along the bottom of the main window: the studio's latest
// status message on the left, the app version on the right.
type StatusBar struct {
	studio  *app.Studio
	do      func(func())
	version string

	message *widget.Label
	ver     *widget.Label
}

// newStatusBar returns a status bar for studio; do carries each status
// update onto the UI thread.
func newStatusBar(studio *app.Studio, do func(func()), version string) *StatusBar {
	return &StatusBar{studio: studio, do: do, version: version}
}

// build makes the widgets, then follows the studio's status through OnStatus.
func (s *StatusBar) build() fyne.CanvasObject {
	s.message = widget.NewLabel("")
	s.message.Truncation = fyne.TextTruncateEllipsis
	s.studio.OnStatus(s.onStatus)
	s.message.SetText(s.studio.Status())
	s.ver = widget.NewLabel("")
	s.ver.Importance = widget.LowImportance
	if s.version != "" {
		s.ver.SetText("v" + s.version)
	}
	bar := container.NewBorder(nil, nil, nil, s.ver, s.message)
	return container.NewVBox(widget.NewSeparator(), bar)
}

// onStatus is the studio's status hook; it may run on any goroutine.
func (s *StatusBar) onStatus(msg string) {
	s.do(func() { s.message.SetText(msg) })
}
