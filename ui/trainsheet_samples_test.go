package ui

import (
	"image"
	"testing"

	"fyne.io/fyne/v2/canvas"

	"github.com/perfusion-studio/perfusion/app"
)

// Samples sent while a concept trains fill a strip beside the sparkline:
// the newest few, the newest last and largest, each with its step, and a
// note of how often they come; a new run starts an empty strip.
func TestTrainSheetShowsSamples(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	s.m.openTrainSheet(nil)
	sh := s.m.trainSheet
	sh.setRunning(true)
	imgs := map[int]*image.RGBA{}
	for step := 1; step <= 6; step++ {
		imgs[step] = image.NewRGBA(image.Rect(0, 0, 32, 32))
		e := app.TrainingEvent{Name: "disc", Stage: "train", Step: step, Total: 10, SampleEvery: 3}
		if step > 1 {
			e.StepSample = &app.TrainingSample{Step: step, Image: imgs[step]}
		}
		sh.onEvent(e)
	}
	s.q.pumpUntil(t, "the samples", func() bool {
		return sh.samples.note.Text != "" && len(sh.samples.steps) > 0 && sh.samples.steps[len(sh.samples.steps)-1] == 6
	})
	if got := sh.samples.steps; len(got) != 4 || got[0] != 3 || got[3] != 6 {
		t.Fatalf("strip steps %v, want 3 to 6", got)
	}
	for i, o := range sh.samples.box.Objects {
		img := o.(*canvas.Image)
		step := sh.samples.steps[i]
		if img.Image != imgs[step] {
			t.Errorf("image %d does not show step %d's sample", i, step)
		}
		want := float32(sampleSideOlder)
		if i == 3 {
			want = sampleSideNew
		}
		if img.MinSize().Width != want {
			t.Errorf("image %d is %v wide, want %v", i, img.MinSize().Width, want)
		}
	}
	if sh.samples.note.Text != "step 6; a sample every 3 steps" {
		t.Errorf("note %q", sh.samples.note.Text)
	}
	sh.setRunning(false)
	sh.name.SetText("disc")
	sh.onStart() // fails (no photos, no model) but clears the strip first
	if len(sh.samples.box.Objects) != 0 || sh.samples.note.Text != "" {
		t.Errorf("a new run kept %d samples and note %q", len(sh.samples.box.Objects), sh.samples.note.Text)
	}
}
