package ui

import (
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// Samples drawn while a concept trains: the sheet keeps the newest few in
// a strip beside the loss sparkline, the newest last and largest.
const (
	sampleStripLen  = 4
	sampleSideNew   = 64 // the newest sample, in the strip
	sampleSideOlder = 40 // the ones before it
)

// sampleStrip shows the samples of the run in progress.
type sampleStrip struct {
	box   *fyne.Container // of images, oldest first
	note  *widget.Label   // the newest one's step, and how often they come
	steps []int           // the step of each image
	every int             // steps between samples; 0: unknown
}

func newSampleStrip() *sampleStrip {
	st := &sampleStrip{box: container.NewHBox(), note: widget.NewLabel("")}
	st.note.Importance = widget.LowImportance
	st.note.SizeName = theme.SizeNameCaptionText
	return st
}

// object is the strip with its note under it, for the sheet's layout.
func (st *sampleStrip) object() fyne.CanvasObject {
	return container.NewBorder(nil, st.note, nil, nil, container.NewHBox(layout.NewSpacer(), st.box))
}

// clear empties the strip for a new run.
func (st *sampleStrip) clear() {
	st.box.RemoveAll()
	st.steps, st.every = nil, 0
	st.note.SetText("")
}

// add shows a new sample, dropping the oldest beyond sampleStripLen.
func (st *sampleStrip) add(ts *app.TrainingSample) {
	img := canvas.NewImageFromImage(ts.Image)
	img.FillMode = canvas.ImageFillContain
	img.ScaleMode = canvas.ImageScaleFastest
	st.box.Add(img)
	st.steps = append(st.steps, ts.Step)
	if len(st.steps) > sampleStripLen {
		st.box.Remove(st.box.Objects[0])
		st.steps = st.steps[1:]
	}
	for i, o := range st.box.Objects {
		side := float32(sampleSideOlder)
		if i == len(st.box.Objects)-1 {
			side = sampleSideNew
		}
		o.(*canvas.Image).SetMinSize(fyne.NewSize(side, side))
	}
	st.box.Refresh()
	st.showNote()
}

// setEvery says how often samples come.
func (st *sampleStrip) setEvery(n int) {
	st.every = n
	st.showNote()
}

// showNote names the newest sample's step and how often they come.
func (st *sampleStrip) showNote() {
	var parts []string
	if len(st.steps) > 0 {
		parts = append(parts, fmt.Sprintf("step %d", st.steps[len(st.steps)-1]))
	}
	switch {
	case st.every == 1:
		parts = append(parts, "a sample every step")
	case st.every > 1:
		parts = append(parts, fmt.Sprintf("a sample every %d steps", st.every))
	}
	st.note.SetText(strings.Join(parts, "; "))
}
