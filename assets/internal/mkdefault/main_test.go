package main

import (
	"image"
	"image/color"
	"math"
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
)

func TestReplicasFor(t *testing.T) {
	for _, c := range []struct{ cores, vae, unet, want int }{
		{2, 16, 32, 2},
		{1, 16, 32, 1},
		{3, 16, 32, 2}, // 3 splits neither batch
		{8, 16, 32, 8},
		{12, 16, 32, 8},
		{4, 6, 32, 2},
		{4, 15, 32, 1},
	} {
		if got := replicasFor(c.cores, c.vae, c.unet); got != c.want {
			t.Errorf("replicasFor(%d, %d, %d) = %d, want %d", c.cores, c.vae, c.unet, got, c.want)
		}
	}
}

// square is a side x side transparent glyph with an opaque square of half
// the side at its centre.
func square(side int) *image.NRGBA {
	g := image.NewNRGBA(image.Rect(0, 0, side, side))
	for y := side / 4; y < 3*side/4; y++ {
		for x := side / 4; x < 3*side/4; x++ {
			g.SetNRGBA(x, y, color.NRGBA{200, 100, 0, 255})
		}
	}
	return g
}

func TestDatasetPlacements(t *testing.T) {
	const side, placements = 32, 4
	e := emoji.Emoji{Name: "test square", Subgroup: "geometric", Group: "symbols"}
	set := &emoji.Set{Size: side, Train: []emoji.Item{{Emoji: e, Glyph: square(side)}}}
	d := dataset{set, placements, 7}
	nb := len(emoji.Backgrounds())
	if d.Backgrounds() != nb*placements {
		t.Fatalf("Backgrounds() = %d, want %d", d.Backgrounds(), nb*placements)
	}
	for bg := range d.Backgrounds() {
		want := emoji.Backgrounds()[bg%nb]
		if got := d.Caption(0, bg, 0); got != emoji.Caption(e, want, 0) {
			t.Errorf("caption of index %d = %q, want background %s", bg, got, want.Name)
		}
		x := d.Image(0, bg)
		if bg < nb { // placement 0: the data set's own image
			if !slices.Equal(x, set.Train[0].Image(want)) {
				t.Errorf("index %d: placement 0 differs from the data set's image", bg)
			}
			continue
		}
		v := Placement(7, 0, bg/nb, side)
		if lim := 3.0 * side / 64; math.Abs(v.DX) > lim || math.Abs(v.DY) > lim || v.Scale <= 0.85 || v.Scale > 1 || v.Flip {
			t.Errorf("placement %d: %+v outside the shift ±%g, scale 0.85–1, no mirror", bg/nb, v, lim)
		}
		if v != Placement(7, 0, bg/nb, side) {
			t.Errorf("placement %d is not a function of its arguments", bg/nb)
		}
		// the corners keep the background, and the square's centre of
		// mass moves with the placement's shift
		c := [3]float32{float32(want.Color.R)/127.5 - 1, float32(want.Color.G)/127.5 - 1, float32(want.Color.B)/127.5 - 1}
		var mx, my, m float64
		for y := range side {
			for xx := range side {
				var dist float64
				for ch := range 3 {
					dist += math.Abs(float64(x[ch*side*side+y*side+xx] - c[ch]))
				}
				if (y == 0 || y == side-1) && (xx == 0 || xx == side-1) && dist > 0.02 {
					t.Errorf("index %d: corner (%d,%d) is not the background", bg, xx, y)
				}
				w := min(1, dist)
				mx, my, m = mx+w*(float64(xx)+0.5), my+w*(float64(y)+0.5), m+w
			}
		}
		if dx, dy := mx/m-side/2, my/m-side/2; math.Abs(dx-v.DX) > 0.3 || math.Abs(dy-v.DY) > 0.3 {
			t.Errorf("index %d: square centred at %+.2f,%+.2f from the middle, want the shift %+.2f,%+.2f", bg, dx, dy, v.DX, v.DY)
		}
	}
	if Placement(7, 0, 1, side) == Placement(7, 0, 2, side) || Placement(7, 0, 1, side) == Placement(7, 1, 1, side) {
		t.Error("placements of different indices or items coincide")
	}
}
