package emoji

import (
	"image"
	"math"
)

// MaxShift is the largest shift, in pixels on each axis, of the moved
// views of a glyph of the given side: 3/64 of it. The default model's
// placements, the evaluation's concept views and the classifiers'
// augmentation all move a glyph by up to this much.
func MaxShift(side float64) float64 { return 3 * side / 64 }

// View is one placement of a glyph on a background: a shift in pixels,
// a scale about the centre and an optional mirror.
type View struct {
	Background int     // index into emoji.Backgrounds()
	DX, DY     float64 // shift, pixels
	Scale      float64 // 1: as the data set draws it
	Flip       bool    // mirror left-right
}

// Render draws glyph (a transparent square, as emoji.Item.Glyph) on the
// view's background, moved, scaled and mirrored with bilinear sampling.
func Render(glyph *image.NRGBA, v View) *image.RGBA {
	bgs := Backgrounds()
	bg := bgs[v.Background%len(bgs)].Color
	r := glyph.Bounds()
	w, h := r.Dx(), r.Dy()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	scale := v.Scale
	if !(scale > 0) {
		scale = 1
	}
	cx, cy := float64(w)/2, float64(h)/2
	for y := range h {
		for x := range w {
			u := (float64(x)+0.5-cx-v.DX)/scale + cx - 0.5
			if v.Flip {
				u = float64(w) - 1 - u
			}
			t := (float64(y)+0.5-cy-v.DY)/scale + cy - 0.5
			px := samplePremul(glyph, u, t)
			a := px[3]
			o := out.PixOffset(x, y)
			out.Pix[o+0] = clamp8(px[0] + float64(bg.R)*(1-a))
			out.Pix[o+1] = clamp8(px[1] + float64(bg.G)*(1-a))
			out.Pix[o+2] = clamp8(px[2] + float64(bg.B)*(1-a))
			out.Pix[o+3] = 255
		}
	}
	return out
}

// samplePremul reads glyph at (u, t) bilinearly as premultiplied colour
// (0..255) and alpha (0..1); outside is transparent.
func samplePremul(g *image.NRGBA, u, t float64) [4]float64 {
	var acc [4]float64
	x0, y0 := math.Floor(u), math.Floor(t)
	fx, fy := u-x0, t-y0
	r := g.Bounds()
	for dy := 0; dy < 2; dy++ {
		for dx := 0; dx < 2; dx++ {
			x, y := int(x0)+dx, int(y0)+dy
			if x < r.Min.X || y < r.Min.Y || x >= r.Max.X || y >= r.Max.Y {
				continue
			}
			wgt := (1 - fx) * (1 - fy)
			switch {
			case dx == 1 && dy == 0:
				wgt = fx * (1 - fy)
			case dx == 0 && dy == 1:
				wgt = (1 - fx) * fy
			case dx == 1 && dy == 1:
				wgt = fx * fy
			}
			o := g.PixOffset(x, y)
			a := float64(g.Pix[o+3]) / 255
			acc[0] += wgt * float64(g.Pix[o]) * a
			acc[1] += wgt * float64(g.Pix[o+1]) * a
			acc[2] += wgt * float64(g.Pix[o+2]) * a
			acc[3] += wgt * a
		}
	}
	return acc
}

func clamp8(v float64) uint8 { return uint8(math.Round(max(0, min(255, v)))) }
