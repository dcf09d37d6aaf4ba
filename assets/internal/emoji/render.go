package emoji

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"

	"github.com/go-text/typesetting/di"
	"github.com/go-text/typesetting/font"
	"github.com/go-text/typesetting/language"
	"github.com/go-text/typesetting/shaping"
	"golang.org/x/image/draw"
	"golang.org/x/image/math/fixed"
)

// Font is the Noto Color Emoji font: sequences are shaped with the
// HarfBuzz port of go-text (so ZWJ sequences and flags become their
// ligature glyph) and the glyph's colour bitmap is read from CBDT/CBLC.
type Font struct {
	face   *font.Face
	shaper shaping.HarfbuzzShaper
}

// OpenFont reads a colour-bitmap font file.
func OpenFont(path string) (*Font, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("emoji: %w (install the Debian package fonts-noto-color-emoji)", err)
	}
	face, err := font.ParseTTF(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("emoji: parse %s: %w", path, err)
	}
	return &Font{face: face}, nil
}

// Bitmap returns the colour bitmap of the single glyph the font shapes rs
// into. A sequence that does not become exactly one glyph, or a glyph
// without a PNG bitmap, is an error.
func (f *Font) Bitmap(rs []rune) (image.Image, error) {
	out := f.shaper.Shape(shaping.Input{
		Text: rs, RunStart: 0, RunEnd: len(rs),
		Direction: di.DirectionLTR, Face: f.face, Size: fixed.I(109),
		Script: language.Common, Language: language.NewLanguage("en"),
	})
	if len(out.Glyphs) != 1 {
		return nil, fmt.Errorf("emoji: %s shapes to %d glyphs, want 1", codepoints(rs), len(out.Glyphs))
	}
	gid := out.Glyphs[0].GlyphID
	if gid == 0 {
		return nil, fmt.Errorf("emoji: %s has no glyph in the font", codepoints(rs))
	}
	bm, ok := f.face.GlyphData(gid).(font.GlyphBitmap)
	if !ok || bm.Format != font.PNG {
		return nil, fmt.Errorf("emoji: glyph %d of %s is not a PNG bitmap", gid, codepoints(rs))
	}
	img, err := png.Decode(bytes.NewReader(bm.Data))
	if err != nil {
		return nil, fmt.Errorf("emoji: glyph %d of %s: %w", gid, codepoints(rs), err)
	}
	return img, nil
}

// Background is a plain background colour with its caption word.
type Background struct {
	Name  string
	Color color.RGBA
}

// Backgrounds returns the plain background colours of the data set, white
// first (the default a caption without a colour stands for).
func Backgrounds() []Background {
	return []Background{
		{"white", color.RGBA{255, 255, 255, 255}},
		{"black", color.RGBA{0, 0, 0, 255}},
		{"red", color.RGBA{220, 30, 30, 255}},
		{"green", color.RGBA{30, 170, 60, 255}},
		{"blue", color.RGBA{30, 70, 220, 255}},
		{"yellow", color.RGBA{245, 215, 40, 255}},
	}
}

// Scale fits a glyph bitmap into a size x size transparent square, keeping
// its aspect ratio and leaving a margin of size/16 on each side, with
// Catmull-Rom resampling.
func Scale(src image.Image, size int) *image.NRGBA {
	dst := image.NewNRGBA(image.Rect(0, 0, size, size))
	b := src.Bounds()
	if b.Empty() || size <= 0 {
		return dst
	}
	inner := size - 2*(size/16)
	w, h := inner, inner
	if b.Dx() > b.Dy() {
		h = max(1, inner*b.Dy()/b.Dx())
	} else {
		w = max(1, inner*b.Dx()/b.Dy())
	}
	x0, y0 := (size-w)/2, (size-h)/2
	draw.CatmullRom.Scale(dst, image.Rect(x0, y0, x0+w, y0+h), src, b, draw.Src, nil)
	return dst
}

// Composite draws the transparent glyph image over a plain background.
func Composite(glyph *image.NRGBA, bg color.RGBA) *image.RGBA {
	r := glyph.Bounds()
	out := image.NewRGBA(r)
	draw.Draw(out, r, &image.Uniform{C: bg}, image.Point{}, draw.Src)
	draw.Draw(out, r, glyph, r.Min, draw.Over)
	return out
}

// CHW converts an image to float32 planes [3, H, W] in [-1, 1], the range
// the VAE works in.
func CHW(img *image.RGBA) []float32 {
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	out := make([]float32, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := img.PixOffset(r.Min.X+x, r.Min.Y+y)
			for c := 0; c < 3; c++ {
				out[c*w*h+y*w+x] = float32(img.Pix[o+c])/127.5 - 1
			}
		}
	}
	return out
}
