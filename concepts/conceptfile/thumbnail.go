package conceptfile

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
)

// ThumbnailSide is the longest side of a thumbnail Thumbnail makes first;
// it halves the size until the PNG fits MaxThumbnailBytes.
const ThumbnailSide = 64

// Thumbnail returns img scaled down (area average) to at most ThumbnailSide
// pixels a side and encoded as a PNG of at most MaxThumbnailBytes bytes; if
// the PNG is too big the side shrinks until it fits.
func Thumbnail(img image.Image) ([]byte, error) {
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("conceptfile: thumbnail of an empty image")
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	for side := ThumbnailSide; side >= 4; side = side * 3 / 4 {
		w, h := b.Dx(), b.Dy()
		if w >= h && w > side {
			w, h = side, max(1, h*side/w)
		} else if h > w && h > side {
			w, h = max(1, w*side/h), side
		}
		var buf bytes.Buffer
		if err := enc.Encode(&buf, shrink(img, w, h)); err != nil {
			return nil, fmt.Errorf("conceptfile: thumbnail: %w", err)
		}
		if buf.Len() <= MaxThumbnailBytes {
			return buf.Bytes(), nil
		}
	}
	return nil, fmt.Errorf("conceptfile: thumbnail does not fit %d bytes", MaxThumbnailBytes)
}

// shrink scales img to w×h by averaging the source pixels each target pixel
// covers (w, h no larger than the source).
func shrink(img image.Image, w, h int) *image.NRGBA {
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	sw, sh := b.Dx(), b.Dy()
	for y := range h {
		y0, y1 := b.Min.Y+y*sh/h, b.Min.Y+max((y+1)*sh/h, y*sh/h+1)
		for x := range w {
			x0, x1 := b.Min.X+x*sw/w, b.Min.X+max((x+1)*sw/w, x*sw/w+1)
			var r, g, bl, a, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					cr, cg, cb, ca := img.At(sx, sy).RGBA() // premultiplied, 16 bit
					r, g, bl, a, n = r+uint64(cr), g+uint64(cg), bl+uint64(cb), a+uint64(ca), n+1
				}
			}
			i := out.PixOffset(x, y)
			if a == 0 {
				continue // transparent: leave zero
			}
			// un-premultiply the averages into 8-bit NRGBA
			out.Pix[i+0] = uint8(r * 255 / a)
			out.Pix[i+1] = uint8(g * 255 / a)
			out.Pix[i+2] = uint8(bl * 255 / a)
			out.Pix[i+3] = uint8(a / n >> 8)
		}
	}
	return out
}
