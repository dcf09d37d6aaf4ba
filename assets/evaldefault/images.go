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
