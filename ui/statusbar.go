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
// status message on the left; the running tasks (a model loading,
// renders, exports, preparing concepts, a concept training) with progress,
// ETA and a cancel button; the app version on the right. Several tasks
// can run at once: the bar shows the newest one, and a "+N" button lists
// them all, each with its own progress and cancel.
type StatusBar struct {
	studio  *app.Studio
	do      func(func())
	version string

	message  *widget.Label
	progress *widget.ProgressBar
	eta      *widget.Label
	cancel   *widget.Button
	more     *widget.Button // "+N": the list of all running tasks
	ver      *widget.Label

	tasks map[app.TaskKind]*taskRow // running, by kind
	order []app.TaskKind            // running kinds, oldest start first
	list  *fyne.Container           // the rows, in the popup
	popup *widget.PopUp
	shown float64 // the foreground fraction on screen
}

// taskRow is one running task as the list shows it.
type taskRow struct {
	kind      app.TaskKind
	task      app.Task
	label     *widget.Label
	progress  *widget.ProgressBar
	eta       *widget.Label
	cancel    *widget.Button
	row       fyne.CanvasObject
	shown     float64 // fraction on screen, to skip updates too small to see
	cancelled bool    // cancel was pressed
}

// newStatusBar returns a status bar for studio; do carries each status
// update onto the UI thread.
func newStatusBar(studio *app.Studio, do func(func()), version string) *StatusBar {
	return &StatusBar{studio: studio, do: do, version: version, tasks: map[app.TaskKind]*taskRow{}}
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
	s.more = widget.NewButton("", s.showList)
	s.more.Importance = widget.LowImportance
	s.list = container.NewVBox()
	s.showForeground()
	s.studio.OnTask(s.onTask)
	s.ver = widget.NewLabel("")
	s.ver.Importance = widget.LowImportance
	if s.version != "" {
		s.ver.SetText("v" + s.version)
	}
	task := container.NewHBox(container.NewGridWrap(fyne.NewSize(180, s.progress.MinSize().Height), s.progress), s.eta, s.cancel, s.more)
	bar := container.NewBorder(nil, nil, nil, container.NewHBox(task, s.ver), s.message)
	return container.NewVBox(widget.NewSeparator(), bar)
}

// onStatus is the studio's status hook; it may run on any goroutine.
func (s *StatusBar) onStatus(msg string) {
	s.do(func() { s.message.SetText(msg) })
}

// onTask is the studio's task hook; it may run on any goroutine. Updates
// that move a bar by less than half a percent are dropped (a model load
// reports after every tensor).
func (s *StatusBar) onTask(t app.Task) {
	s.do(func() {
		r := s.tasks[t.Kind]
		if t.Done {
			if r != nil {
				s.remove(r)
			}
			if t.Err != nil && !errors.Is(t.Err, context.Canceled) {
				s.message.SetText(t.Label + ": " + t.Err.Error())
			}
			s.showForeground()
			return
		}
		if r == nil {
			r = s.add(t.Kind)
		} else if t.Fraction-r.shown < 0.005 && t.Fraction >= r.shown && t.Label == r.task.Label {
			return
		}
		r.task, r.shown = t, t.Fraction
		r.label.SetText(t.Label)
		r.progress.SetValue(t.Fraction)
		r.eta.SetText(formatETA(t.ETA))
		if s.foreground() == r {
			s.message.SetText(t.Label)
		}
		s.showForeground()
	})
}

// add makes the row of a newly started task: it becomes the foreground.
func (s *StatusBar) add(kind app.TaskKind) *taskRow {
	r := &taskRow{kind: kind, label: widget.NewLabel(""), progress: widget.NewProgressBar(), eta: widget.NewLabel("")}
	r.label.Truncation = fyne.TextTruncateEllipsis
	r.cancel = widget.NewButtonWithIcon("", theme.CancelIcon(), func() { s.cancelTask(r) })
	r.row = container.NewBorder(nil, nil, nil, container.NewHBox(
		container.NewGridWrap(fyne.NewSize(140, r.progress.MinSize().Height), r.progress), r.eta, r.cancel),
		container.NewGridWrap(fyne.NewSize(300, r.label.MinSize().Height), r.label))
	s.tasks[kind] = r
	s.order = append(s.order, kind)
	s.list.Add(r.row)
	return r
}

func (s *StatusBar) remove(r *taskRow) {
	delete(s.tasks, r.kind)
	for i, k := range s.order {
		if k == r.kind {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	s.list.Remove(r.row)
}

// foreground is the newest running task, or nil.
func (s *StatusBar) foreground() *taskRow {
	if len(s.order) == 0 {
		return nil
	}
	return s.tasks[s.order[len(s.order)-1]]
}

// showForeground shows the newest task in the bar, and "+N" for the
// others.
func (s *StatusBar) showForeground() {
	f := s.foreground()
	if f == nil {
		s.shown = 0
		s.progress.SetValue(0)
		s.progress.Hide()
		s.eta.Hide()
		s.cancel.Hide()
		s.more.Hide()
		if s.popup != nil {
			s.popup.Hide()
		}
		return
	}
	if f.shown != s.shown || !s.progress.Visible() {
		s.shown = f.shown
		s.progress.SetValue(f.shown)
	}
	s.eta.SetText(formatETA(f.task.ETA))
	s.progress.Show()
	s.eta.Show()
	s.cancel.Show()
	if f.cancelled {
		s.cancel.Disable()
	} else {
		s.cancel.Enable()
	}
	if n := len(s.order) - 1; n > 0 {
		s.more.SetText(fmt.Sprintf("+%d", n))
		s.more.Show()
	} else {
		s.more.Hide()
		if s.popup != nil {
			s.popup.Hide()
		}
	}
}

// showList pops up every running task above the "+N" button.
func (s *StatusBar) showList() {
	c := fyne.CurrentApp().Driver().CanvasForObject(s.more)
	if c == nil {
		return
	}
	if s.popup == nil || s.popup.Canvas != c {
		s.popup = widget.NewPopUp(s.list, c)
	}
	at := fyne.CurrentApp().Driver().AbsolutePositionForObject(s.more)
	size := s.list.MinSize()
	s.popup.ShowAtPosition(fyne.NewPos(max(0, at.X+s.more.Size().Width-size.Width-theme.Padding()*2), max(0, at.Y-size.Height-theme.Padding()*2)))
}

// onCancel stops the task in the bar.
func (s *StatusBar) onCancel() {
	if f := s.foreground(); f != nil {
		s.cancelTask(f)
	}
}

// cancelTask stops one task; the others go on. Its row stays, its cancel
// disabled, until the task reports that it ended.
func (s *StatusBar) cancelTask(r *taskRow) {
	r.cancelled = true
	r.cancel.Disable()
	s.showForeground()
	s.studio.CancelTasks(r.kind)
}

// formatETA shows an estimate as "ETA 1:05", or nothing when unknown.
func formatETA(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("ETA %d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}
