package train

import (
	"image"
	"image/color"
	"testing"
)

func TestMaskWeights(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 16, 16))
	for y := range 16 {
		for x := range 8 { // subject on the left half, at half brightness
			m.SetGray(x, y, color.Gray{128})
		}
	}
	w := maskWeights(m, false, 4, 4, 0.1)
	if w[0] != 1 || w[3] != 0.1 || w[4*3] != 1 || w[4*3+3] != 0.1 {
		t.Errorf("weights %v: want 1 on the left (normalised by the max), 0.1 on the right", w)
	}
	f := maskWeights(m, true, 4, 4, 0)
	if f[0] != 0 || f[3] != 1 {
		t.Errorf("flipped weights %v", f)
	}
	empty := maskWeights(image.NewGray(image.Rect(0, 0, 8, 8)), false, 2, 2, 0.25)
	for _, v := range empty {
		if v != 0.25 {
			t.Fatalf("an empty mask gives %v, want the floor everywhere", empty)
		}
	}
}
