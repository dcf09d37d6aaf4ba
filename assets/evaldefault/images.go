package evaldefault

import (
	"image"
	"image/color"
	"math"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
)

// Input turns an image into the classifier's input: its centred square
// area-averaged down to InputSize x InputSize, as planes [3, S, S] in
// [-1, 1] (the range of emoji.CHW).
func Input(img image.Image) []float32 {
	b := img.Bounds()
	side := min(b.Dx(), b.Dy())
	x0, y0 := b.Min.X+(b.Dx()-side)/2, b.Min.Y+(b.Dy()-side)/2
	const s = InputSize
	out := make([]float32, 3*s*s)
	if side <= 0 {
		return out
	}
	var sum [3][s * s]float64
	var cnt [s * s]float64
	for y := range side {
		oy := y * s / side
		for x := range side {
			ox := x * s / side
			r, g, bl, _ := img.At(x0+x, y0+y).RGBA()
			i := oy*s + ox
			sum[0][i] += float64(r >> 8)
			sum[1][i] += float64(g >> 8)
			sum[2][i] += float64(bl >> 8)
			cnt[i]++
		}
	}
	for c := range 3 {
		for i := range s * s {
			if cnt[i] > 0 {
				out[c*s*s+i] = float32(sum[c][i]/cnt[i]/127.5 - 1)
			}
		}
	}
	return out
}

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
	bgs := emoji.Backgrounds()
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

// Background returns the index in emoji.Backgrounds() of an image's
// background: each pixel of a border ring (1/32 of the side wide, at least
// one pixel; the data set's glyphs keep 1/16 of the side clear) votes for
// its nearest background colour, and the most votes win. share is the
// winner's share of the votes.
func Background(img image.Image) (bg int, share float64) {
	bgs := emoji.Backgrounds()
	b := img.Bounds()
	ring := max(1, min(b.Dx(), b.Dy())/32)
	votes := make([]int, len(bgs))
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if x >= b.Min.X+ring && x < b.Max.X-ring && y >= b.Min.Y+ring && y < b.Max.Y-ring {
				continue
			}
			votes[nearestBackground(img.At(x, y), bgs)]++
			n++
		}
	}
	for i := range votes {
		if votes[i] > votes[bg] {
			bg = i
		}
	}
	if n == 0 {
		return 0, 0
	}
	return bg, float64(votes[bg]) / float64(n)
}

// nearestBackground is the background colour nearest c (RGB distance).
func nearestBackground(c color.Color, bgs []emoji.Background) int {
	r, g, b, _ := c.RGBA()
	best, bestD := 0, math.Inf(1)
	for i, bg := range bgs {
		dr, dg, db := float64(r>>8)-float64(bg.Color.R), float64(g>>8)-float64(bg.Color.G), float64(b>>8)-float64(bg.Color.B)
		if d := dr*dr + dg*dg + db*db; d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

// BackgroundIndex is the index of the background called name, or -1.
func BackgroundIndex(name string) int {
	for i, bg := range emoji.Backgrounds() {
		if bg.Name == name {
			return i
		}
	}
	return -1
}
