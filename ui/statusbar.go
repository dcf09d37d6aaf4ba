package ui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// StatusBar runs along the bottom of the main window: the studio's latest
// status message on the left; while a model loads, a render runs or a
// batch exports, its progress, ETA and a cancel button; the app version on
// the right.
type StatusBar struct {
	studio  *app.Studio
	do      func(func())
	version string

	message  *widget.Label
	progress *widget.ProgressBar
	eta      *widget.Label
	cancel   *widget.Button
	ver      *widget.Label

	shown float64 // fraction on screen, to skip updates too small to see
}

// newStatusBar returns a status bar for studio; do carries each status
// update onto the UI thread.
func newStatusBar(studio *app.Studio, do func(func()), version string) *StatusBar {
	return &StatusBar{studio: studio, do: do, version: version}
}

// build makes the widgets, then follows the studio's status and tasks.
func (s *StatusBar) build() fyne.CanvasObject {
	s.message = widget.NewLabel("")
	s.message.Truncation = fyne.TextTruncateEllipsis
	s.studio.OnStatus(s.onStatus)
	s.message.SetText(s.studio.Status())
	s.progress = widget.NewProgressBar()
	s.eta = widget.NewLabel("")
	s.cancel = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), s.onCancel)
	s.hideTask()
	s.studio.OnTask(s.onTask)
	s.ver = widget.NewLabel("")
	s.ver.Importance = widget.LowImportance
	if s.version != "" {
		s.ver.SetText("v" + s.version)
	}
	task := container.NewHBox(container.NewGridWrap(fyne.NewSize(180, s.progress.MinSize().Height), s.progress), s.eta, s.cancel)
	bar := container.NewBorder(nil, nil, nil, container.NewHBox(task, s.ver), s.message)
	return container.NewVBox(widget.NewSeparator(), bar)
}

// onStatus is the studio's status hook; it may run on any goroutine.
func (s *StatusBar) onStatus(msg string) {
	s.do(func() { s.message.SetText(msg) })
}

// onTask is the studio's task hook; it may run on any goroutine. Updates
// that move the bar by less than half a percent are dropped (a model load
// reports after every tensor).
func (s *StatusBar) onTask(t app.Task) {
	s.do(func() {
		if t.Done {
			s.hideTask()
			if t.Err != nil && !errors.Is(t.Err, context.Canceled) {
				s.message.SetText(t.Label + ": " + t.Err.Error())
			}
			return
		}
		if s.progress.Visible() && t.Fraction-s.shown < 0.005 && t.Fraction >= s.shown {
			return
		}
		s.shown = t.Fraction
		s.message.SetText(t.Label)
		s.progress.SetValue(t.Fraction)
		s.eta.SetText(formatETA(t.ETA))
		s.progress.Show()
		s.eta.Show()
		s.cancel.Show()
	})
}

func (s *StatusBar) hideTask() {
	s.shown = 0
	s.progress.SetValue(0)
	s.progress.Hide()
	s.eta.Hide()
	s.cancel.Hide()
}

// onCancel stops the running load, render or export.
func (s *StatusBar) onCancel() { s.studio.CancelTask() }

// formatETA shows an estimate as "ETA 1:05", or nothing when unknown.
func formatETA(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("ETA %d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}
