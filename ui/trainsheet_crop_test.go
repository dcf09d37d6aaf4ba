package ui

import (
	"image"
	"math"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/perfusion-studio/perfusion/app"
)

// drag sends one drag event as the desktop driver does: the pointer now at
// to, moved by d since the last event.
func drag(v *cropView, to fyne.Position, dx, dy float32) {
	v.Dragged(&fyne.DragEvent{PointEvent: fyne.PointEvent{Position: to}, Dragged: fyne.Delta{DX: dx, DY: dy}})
}

// Dragging inside the crop moves it, dragging a corner resizes it about
// the opposite corner, scrolling resizes it about its centre; it stays a
// square inside the photo and no smaller than a fifth of its short side.
func TestCropViewDragAndScroll(t *testing.T) {
	test.NewTempApp(t)
	size := image.Pt(200, 100)
	v := newCropView(size, image.NewNRGBA(image.Rect(0, 0, 128, 64)), app.CenterSquare(size))
	var got []image.Rectangle
	v.OnChanged = func(r image.Rectangle) { got = append(got, r) }
	v.Resize(fyne.NewSize(200, 100)) // one unit per photo pixel
	test.NewWindow(v)
	v.Resize(fyne.NewSize(200, 100))

	// Move left by 30, then far past the edge: it stops there.
	drag(v, fyne.NewPos(70, 50), -30, 0)
	if v.crop != image.Rect(20, 0, 120, 100) {
		t.Fatalf("after moving 30 left: %v", v.crop)
	}
	drag(v, fyne.NewPos(-50, 60), -120, 10)
	v.DragEnd()
	if v.crop != image.Rect(0, 0, 100, 100) {
		t.Fatalf("after moving past the edge: %v", v.crop)
	}
	// Resize from the bottom-right corner: the top left stays.
	drag(v, fyne.NewPos(80, 80), -20, -20)
	if v.crop != image.Rect(0, 0, 80, 80) {
		t.Fatalf("after dragging the corner in: %v", v.crop)
	}
	drag(v, fyne.NewPos(70, 40), -10, -40)
	if v.crop != image.Rect(0, 0, 70, 70) {
		t.Fatalf("the larger move sets the side: %v", v.crop)
	}
	drag(v, fyne.NewPos(2, 2), -68, -38)
	if v.crop != image.Rect(0, 0, 20, 20) {
		t.Fatalf("below the smallest crop: %v", v.crop)
	}
	drag(v, fyne.NewPos(400, 300), 398, 298)
	v.DragEnd()
	if v.crop != image.Rect(0, 0, 100, 100) {
		t.Fatalf("past the photo: %v", v.crop)
	}
	// Move it right, then resize from its top-left corner: the bottom
	// right stays.
	drag(v, fyne.NewPos(150, 50), 100, 0)
	v.DragEnd()
	drag(v, fyne.NewPos(130, 30), 30, 30)
	v.DragEnd()
	if v.crop != image.Rect(130, 30, 200, 100) {
		t.Fatalf("after dragging the top-left corner: %v", v.crop)
	}
	// Scroll down shrinks about the centre, up grows back within the photo.
	v.Scrolled(&fyne.ScrollEvent{Scrolled: fyne.Delta{DY: -10}})
	if c := v.crop; c.Dx() != 67 || c.Dy() != 67 || math.Abs(float64(c.Min.X+c.Max.X)/2-165) > 1 {
		t.Fatalf("after scrolling down: %v", c)
	}
	for range 20 {
		v.Scrolled(&fyne.ScrollEvent{Scrolled: fyne.Delta{DY: 10}})
	}
	if v.crop != image.Rect(100, 0, 200, 100) {
		t.Fatalf("after scrolling up a lot: %v", v.crop)
	}
	if len(got) == 0 || got[len(got)-1] != v.crop {
		t.Errorf("OnChanged saw %d changes, last %v", len(got), got)
	}

	// At half scale a drag of 10 units is 20 pixels.
	v.Resize(fyne.NewSize(100, 50))
	drag(v, fyne.NewPos(65, 25), -10, 0)
	v.DragEnd()
	if v.crop != image.Rect(80, 0, 180, 100) {
		t.Fatalf("at half scale: %v", v.crop)
	}
}

// In the sheet, a dragged crop is the photo's own and goes into the
// request; the Crop button brings back the presets.
func TestTrainSheetCropDrag(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	s.m.openTrainSheet(nil)
	sh := s.m.trainSheet
	uris := writeSheetPhotos(t, 2)
	sh.addPhotos([]string{uris[0].Path(), uris[1].Path()})
	s.q.pumpUntil(t, "thumbnails", func() bool { return len(sh.photos) == 2 })
	sp := sh.photos[1] // 56x40: the centred square is (8,0)-(48,40)
	v := sp.view
	v.Resize(fyne.NewSize(112, 80)) // two units per pixel
	x0, y0, sc := v.frame()
	if sc != 2 || x0 != 0 || y0 != 0 {
		t.Fatalf("frame %v %v %v", x0, y0, sc)
	}
	drag(v, fyne.NewPos(50, 40), -10, 0) // 5 px left
	v.DragEnd()
	want := image.Rect(3, 0, 43, 40)
	if sp.cropBox() != want || sp.button.Text != "Crop: your own" {
		t.Fatalf("after a drag: %v %q", sp.cropBox(), sp.button.Text)
	}
	// The bottom-left corner, dragged in by 10 px: the top right stays.
	drag(v, fyne.NewPos(6+20, 80-20), 20, -20)
	v.DragEnd()
	want = image.Rect(13, 0, 43, 30)
	if sp.cropBox() != want {
		t.Fatalf("after resizing: %v", sp.cropBox())
	}
	if r := sh.request(); r.Photos[1].Crop != want || r.Photos[0].Crop != image.Rect(4, 0, 44, 40) {
		t.Errorf("request crops %v %v", r.Photos[0].Crop, r.Photos[1].Crop)
	}
	test.Tap(sp.button)
	if sp.cropBox() != image.Rect(8, 0, 48, 40) || sp.button.Text != "Crop: centre" || sp.view.crop != sp.cropBox() {
		t.Errorf("after tapping Crop: %v %q, shown %v", sp.cropBox(), sp.button.Text, sp.view.crop)
	}
}
