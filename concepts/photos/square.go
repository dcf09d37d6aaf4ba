package photos

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"

	"github.com/disintegration/imaging"
)

// Square crops img to box (the zero Rectangle: the whole image), then to
// the centred square of that, and resizes it to size × size with a
// Lanczos filter (a box filter is used first when shrinking by more than
// 4×, which is as sharp and much faster). Transparent pixels are laid on
// white. box is in img's pixel coordinates relative to its top-left corner
// and must lie inside it.
func Square(img image.Image, box image.Rectangle, size int) (*image.NRGBA, error) {
	if size <= 0 || size > MaxSize {
		return nil, fmt.Errorf("size %d: want 1 to %d pixels", size, MaxSize)
	}
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("empty image")
	}
	full := image.Rect(0, 0, b.Dx(), b.Dy())
	if box.Empty() {
		if box != (image.Rectangle{}) {
			return nil, fmt.Errorf("crop box %v is empty", box)
		}
		box = full
	}
	if !box.In(full) {
		return nil, fmt.Errorf("crop box %v is not inside the %dx%d image", box, b.Dx(), b.Dy())
	}
	side := min(box.Dx(), box.Dy())
	x0 := box.Min.X + (box.Dx()-side)/2
	y0 := box.Min.Y + (box.Dy()-side)/2
	sq := imaging.Crop(img, image.Rect(x0, y0, x0+side, y0+side).Add(b.Min)) // [side, side]
	if side > 4*size {
		sq = imaging.Resize(sq, 2*size, 2*size, imaging.Box)
	}
	out := sq
	if sq.Bounds().Dx() != size {
		out = imaging.Resize(sq, size, size, imaging.Lanczos)
	}
	flatten(out)
	return out, nil
}

// flatten lays img on white, leaving it opaque.
func flatten(img *image.NRGBA) {
	opaque := true
	for i := 3; i < len(img.Pix); i += 4 {
		if img.Pix[i] != 0xff {
			opaque = false
			break
		}
	}
	if opaque {
		return
	}
	bg := image.NewNRGBA(img.Bounds())
	draw.Draw(bg, bg.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(bg, bg.Bounds(), img, img.Bounds().Min, draw.Over)
	copy(img.Pix, bg.Pix)
}
