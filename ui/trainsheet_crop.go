package ui

import (
	"image"
	"image/color"
	"math"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
)

// cropHandle is how near a corner, in screen units, a drag resizes the
// crop instead of moving it.
const cropHandle = 12

// cropScrollStep is how much one scroll notch grows or shrinks the crop.
const cropScrollStep = 0.05

// cropView shows a photo's thumbnail with its square crop, bright inside
// and dimmed outside. Dragging inside the square moves it, dragging one of
// its corners resizes it (the opposite corner stays), scrolling over it
// resizes it about its centre. The crop is in the photo's pixels and
// always a square inside the photo.
type cropView struct {
	widget.BaseWidget

	size  image.Point // the upright photo's pixels
	thumb *image.NRGBA
	crop  image.Rectangle
	// OnChanged is called after every change the user makes.
	OnChanged func(image.Rectangle)

	img     *canvas.Image
	outline *canvas.Rectangle
	handles [4]*canvas.Rectangle

	// A drag in progress: the crop unrounded, and for a resize the fixed
	// corner and the direction of the dragged one from it.
	dragging, resizing bool
	fx, fy, fside      float64
	ax, ay, dx, dy     float64
}

func newCropView(size image.Point, thumb *image.NRGBA, crop image.Rectangle) *cropView {
	v := &cropView{size: size, thumb: thumb, crop: crop}
	v.ExtendBaseWidget(v)
	return v
}

// setCrop shows crop (in the photo's pixels) without calling OnChanged.
func (v *cropView) setCrop(crop image.Rectangle) {
	v.crop = crop
	v.Refresh()
}

// minCropSide is the smallest crop: a fifth of the photo's short side.
func (v *cropView) minCropSide() float64 {
	return max(1, float64(min(v.size.X, v.size.Y))/5)
}

// frame is where the photo sits in the widget (fitted, centred): its
// origin and its screen units per photo pixel.
func (v *cropView) frame() (x0, y0, scale float32) {
	sz := v.Size()
	if v.size.X <= 0 || v.size.Y <= 0 {
		return 0, 0, 1
	}
	scale = min(sz.Width/float32(v.size.X), sz.Height/float32(v.size.Y))
	if scale <= 0 {
		scale = 1
	}
	return (sz.Width - float32(v.size.X)*scale) / 2, (sz.Height - float32(v.size.Y)*scale) / 2, scale
}

// toPhoto turns a position in the widget into photo pixels.
func (v *cropView) toPhoto(p fyne.Position) (float64, float64) {
	x0, y0, s := v.frame()
	return float64((p.X - x0) / s), float64((p.Y - y0) / s)
}

// corners are the crop's corners in photo pixels: top left, top right,
// bottom left, bottom right.
func (v *cropView) corners() [4][2]float64 {
	r := v.crop
	return [4][2]float64{
		{float64(r.Min.X), float64(r.Min.Y)}, {float64(r.Max.X), float64(r.Min.Y)},
		{float64(r.Min.X), float64(r.Max.Y)}, {float64(r.Max.X), float64(r.Max.Y)},
	}
}

// Dragged moves or resizes the crop; the first event of a drag decides
// which, from where the drag started.
func (v *cropView) Dragged(e *fyne.DragEvent) {
	_, _, s := v.frame()
	if !v.dragging {
		v.dragging = true
		v.fx, v.fy, v.fside = float64(v.crop.Min.X), float64(v.crop.Min.Y), float64(v.crop.Dx())
		v.resizing = false
		sx, sy := v.toPhoto(e.Position.Subtract(e.Dragged))
		cs := v.corners()
		for i, c := range cs {
			if math.Hypot(sx-c[0], sy-c[1])*float64(s) <= cropHandle {
				o := cs[3-i] // the opposite corner stays
				v.resizing = true
				v.ax, v.ay = o[0], o[1]
				v.dx, v.dy = sign(c[0]-o[0]), sign(c[1]-o[1])
				break
			}
		}
	}
	W, H := float64(v.size.X), float64(v.size.Y)
	if v.resizing {
		px, py := v.toPhoto(e.Position)
		side := max((px-v.ax)*v.dx, (py-v.ay)*v.dy)
		room := min(roomFrom(v.ax, v.dx, W), roomFrom(v.ay, v.dy, H))
		v.fside = math.Min(math.Max(side, v.minCropSide()), room)
		v.fx, v.fy = v.ax, v.ay
		if v.dx < 0 {
			v.fx = v.ax - v.fside
		}
		if v.dy < 0 {
			v.fy = v.ay - v.fside
		}
	} else {
		v.fx = clamp(v.fx+float64(e.Dragged.DX/s), 0, W-v.fside)
		v.fy = clamp(v.fy+float64(e.Dragged.DY/s), 0, H-v.fside)
	}
	v.change(v.fx, v.fy, v.fside)
}

// DragEnd ends the drag.
func (v *cropView) DragEnd() { v.dragging = false }

// Scrolled grows (scrolling up) or shrinks the crop about its centre,
// keeping it inside the photo.
func (v *cropView) Scrolled(e *fyne.ScrollEvent) {
	if e.Scrolled.DY == 0 {
		return
	}
	f := 1 + cropScrollStep
	if e.Scrolled.DY < 0 {
		f = 1 - cropScrollStep
	}
	W, H := float64(v.size.X), float64(v.size.Y)
	r := v.crop
	cx, cy := float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2
	side := clamp(float64(r.Dx())*f, v.minCropSide(), min(W, H))
	if int(math.Round(side)) == r.Dx() { // a notch too small to move a pixel
		side = clamp(float64(r.Dx())+sign(f-1), v.minCropSide(), min(W, H))
	}
	v.change(clamp(cx-side/2, 0, W-side), clamp(cy-side/2, 0, H-side), side)
}

// Cursor is a crosshair over the photo.
func (v *cropView) Cursor() desktop.Cursor { return desktop.CrosshairCursor }

// change rounds a new crop into the photo and reports it.
func (v *cropView) change(x, y, side float64) {
	n := int(math.Round(side))
	n = max(1, min(n, v.size.X, v.size.Y))
	x0 := min(max(int(math.Round(x)), 0), v.size.X-n)
	y0 := min(max(int(math.Round(y)), 0), v.size.Y-n)
	r := image.Rect(x0, y0, x0+n, y0+n)
	if r == v.crop {
		return
	}
	v.crop = r
	v.Refresh()
	if v.OnChanged != nil {
		v.OnChanged(r)
	}
}

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(v, hi)) }

// roomFrom is the room from a towards d (±1) within [0, limit].
func roomFrom(a, d, limit float64) float64 {
	if d > 0 {
		return limit - a
	}
	return a
}

// dimmed is the thumbnail with everything outside the crop dimmed.
func (v *cropView) dimmed() *image.NRGBA {
	th := v.thumb
	out := image.NewNRGBA(th.Bounds())
	copy(out.Pix, th.Pix)
	sx := float64(th.Bounds().Dx()) / float64(v.size.X)
	sy := float64(th.Bounds().Dy()) / float64(v.size.Y)
	box := v.crop
	in := image.Rect(int(float64(box.Min.X)*sx), int(float64(box.Min.Y)*sy), int(float64(box.Max.X)*sx+0.5), int(float64(box.Max.Y)*sy+0.5))
	for y := range out.Bounds().Dy() {
		for x := range out.Bounds().Dx() {
			if !image.Pt(x, y).In(in) {
				i := out.PixOffset(x, y)
				for c := range 3 {
					out.Pix[i+c] /= 3
				}
			}
		}
	}
	return out
}

func (v *cropView) CreateRenderer() fyne.WidgetRenderer {
	v.img = canvas.NewImageFromImage(nil)
	v.img.FillMode = canvas.ImageFillStretch
	v.outline = canvas.NewRectangle(color.Transparent)
	v.outline.StrokeColor = color.White
	v.outline.StrokeWidth = 1.5
	objs := []fyne.CanvasObject{v.img, v.outline}
	for i := range v.handles {
		v.handles[i] = canvas.NewRectangle(color.White)
		objs = append(objs, v.handles[i])
	}
	r := &cropRenderer{v: v, objs: objs}
	r.Refresh()
	return r
}

type cropRenderer struct {
	v    *cropView
	objs []fyne.CanvasObject
}

func (r *cropRenderer) Layout(fyne.Size) {
	v := r.v
	x0, y0, s := v.frame()
	v.img.Move(fyne.NewPos(x0, y0))
	v.img.Resize(fyne.NewSize(float32(v.size.X)*s, float32(v.size.Y)*s))
	c := v.crop
	v.outline.Move(fyne.NewPos(x0+float32(c.Min.X)*s, y0+float32(c.Min.Y)*s))
	v.outline.Resize(fyne.NewSize(float32(c.Dx())*s, float32(c.Dy())*s))
	const h = 6
	for i, p := range v.corners() {
		v.handles[i].Move(fyne.NewPos(x0+float32(p[0])*s-h/2, y0+float32(p[1])*s-h/2))
		v.handles[i].Resize(fyne.NewSize(h, h))
	}
}

func (r *cropRenderer) MinSize() fyne.Size { return fyne.NewSize(48, 48) }

func (r *cropRenderer) Refresh() {
	if r.v.thumb != nil {
		r.v.img.Image = r.v.dimmed()
	}
	r.Layout(r.v.Size())
	canvas.Refresh(r.v)
}

func (r *cropRenderer) Objects() []fyne.CanvasObject { return r.objs }

func (r *cropRenderer) Destroy() {}

// cropBox is the photo's crop box in its pixels.
func (sp *sheetPhoto) cropBox() image.Rectangle {
	r := app.CenterSquare(sp.preview.Size)
	sz := sp.preview.Size
	switch sp.crop {
	case 1:
		r = r.Sub(r.Min)
	case 2:
		r = r.Add(image.Pt(sz.X-r.Max.X, sz.Y-r.Max.Y))
	case -1:
		r = sp.custom
	}
	return r
}

var cropNames = []string{"Crop: centre", "Crop: start", "Crop: end"}

// showCrop shows the photo's crop and names it on its button.
func (t *TrainSheet) showCrop(sp *sheetPhoto) {
	sp.view.setCrop(sp.cropBox())
	if sp.crop < 0 {
		sp.button.SetText("Crop: your own")
	} else {
		sp.button.SetText(cropNames[sp.crop])
	}
}

// onCropDragged keeps the crop the user dragged or scrolled to.
func (t *TrainSheet) onCropDragged(sp *sheetPhoto, r image.Rectangle) {
	sp.crop, sp.custom = -1, r
	sp.button.SetText("Crop: your own")
}
