package ui

import (
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// Samples drawn while a concept trains: the sheet keeps the newest few in
// a strip beside the loss sparkline, the newest last and largest.
const (
	sampleStripLen  = 4
	sampleSideNew   = 96 // the newest sample, in the strip
	sampleSideOlder = 56 // the ones before it
)

// sampleStrip shows the samples of the run in progress.
type sampleStrip struct {
	box   *fyne.Container // of cells: an image over its step
	note  *widget.Label   // "a sample every N steps"
	steps []int           // the step of each cell, oldest first
}

func newSampleStrip() *sampleStrip {
	st := &sampleStrip{box: container.NewHBox(), note: widget.NewLabel("")}
	st.note.Importance = widget.LowImportance
	return st
}

// object is the strip with its note, for the sheet's layout.
func (st *sampleStrip) object() fyne.CanvasObject {
	return container.NewVBox(st.box, st.note)
}

// clear empties the strip for a new run.
func (st *sampleStrip) clear() {
	st.box.RemoveAll()
	st.steps = nil
	st.note.SetText("")
}

// add shows a new sample, dropping the oldest beyond sampleStripLen.
func (st *sampleStrip) add(ts *app.TrainingSample) {
	img := canvas.NewImageFromImage(ts.Image)
	img.FillMode = canvas.ImageFillContain
	img.ScaleMode = canvas.ImageScaleFastest
	label := widget.NewLabel(fmt.Sprintf("step %d", ts.Step))
	label.Importance = widget.LowImportance
	st.box.Add(container.NewVBox(img, label))
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
		o.(*fyne.Container).Objects[0].(*canvas.Image).SetMinSize(fyne.NewSize(side, side))
	}
	st.box.Refresh()
}

// setEvery says how often samples come.
func (st *sampleStrip) setEvery(n int) {
	switch {
	case n <= 0:
		st.note.SetText("")
	case n == 1:
		st.note.SetText("a sample after every step")
	default:
		st.note.SetText(fmt.Sprintf("a sample every %d steps", n))
	}
}
