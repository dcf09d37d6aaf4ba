package vae

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// The tiny pipeline's decoded image, converted by ToRGBA, must be the
// reference uint8 image (same float32 values, same truncation rule).
func TestToRGBAGolden(t *testing.T) {
	f := golden.Open(t, "pipeline_io.safetensors")
	dec, shape := golden.Float32(t, f, "decoded")
	want, wshape := golden.Float32(t, f, "image_uint8_nhwc") // [N, H, W, 3]
	x := tensor.MustNew(dec, shape...)
	imgs, err := ToImages(x)
	if err != nil {
		t.Fatal(err)
	}
	n, h, w := wshape[0], wshape[1], wshape[2]
	if len(imgs) != n {
		t.Fatalf("%d images, want %d", len(imgs), n)
	}
	bad := 0
	for i, img := range imgs {
		if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
			t.Fatalf("image %d is %v, want %dx%d", i, img.Bounds(), w, h)
		}
		for y := range h {
			for xx := range w {
				c := img.RGBAAt(xx, y)
				got := [3]uint8{c.R, c.G, c.B}
				for ch := range 3 {
					if float32(got[ch]) != want[((i*h+y)*w+xx)*3+ch] {
						bad++
					}
				}
				if c.A != 255 {
					t.Fatalf("alpha %d at %d,%d", c.A, xx, y)
				}
			}
		}
	}
	if bad != 0 {
		t.Errorf("%d of %d channel values differ from image_uint8_nhwc", bad, len(want))
	}
}

func TestToByte(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint8
	}{{-1, 0}, {-2, 0}, {1, 255}, {3, 255}, {0, 127}, {float32(math.NaN()), 0}, {2*(100.0/255) - 1 + 1e-6, 100}} {
		if got := toByte(c.in); got != c.want {
			t.Errorf("toByte(%g) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestFromImages(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range 3 {
		for x := range 5 {
			img.SetNRGBA(x, y, color.NRGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255})
		}
	}
	x, err := FromImages([]image.Image{img, img})
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(x.Shape(), []int{2, 3, 3, 5}) {
		t.Fatalf("shape %v", x.Shape())
	}
	d := x.Data()
	for i, v := range d {
		if v < -1 || v > 1 {
			t.Fatalf("value %d = %g outside [-1, 1]", i, v)
		}
	}
	c := img.NRGBAAt(4, 2)
	hw := 15
	p := 2*5 + 4
	for ch, want := range []uint8{c.R, c.G, c.B} {
		if got := d[hw*3+ch*hw+p]; math.Abs(float64(got)-(float64(want)/127.5-1)) > 1e-6 {
			t.Errorf("channel %d: %g, want %g", ch, got, float64(want)/127.5-1)
		}
	}
	back, err := ToRGBA(x, 1)
	if err != nil {
		t.Fatal(err)
	}
	for y := range 3 {
		for xx := range 5 {
			a, b := img.NRGBAAt(xx, y), back.RGBAAt(xx, y)
			for _, pair := range [][2]uint8{{a.R, b.R}, {a.G, b.G}, {a.B, b.B}} {
				if d := int(pair[0]) - int(pair[1]); d < 0 || d > 1 {
					t.Errorf("round trip at %d,%d: %d -> %d", xx, y, pair[0], pair[1])
				}
			}
		}
	}
	if _, err := FromImages([]image.Image{img, image.NewRGBA(image.Rect(0, 0, 2, 2))}); err == nil {
		t.Error("mixed sizes: no error")
	}
}

func TestPreview(t *testing.T) {
	p := SD15Preview()
	r := rand.New(rand.NewPCG(3, 4))
	b, e, h, w := 2, len(p.Factors), 3, 4
	lat := make([]float32, b*e*h*w)
	for i := range lat {
		lat[i] = float32(r.NormFloat64())
	}
	out, err := p.RGB(tensor.MustNew(lat, b, e, h, w))
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(out.Shape(), []int{b, 3, h, w}) {
		t.Fatalf("shape %v", out.Shape())
	}
	hw := h * w
	for i := range b {
		for c := range 3 {
			for j := range hw {
				want := float64(p.Bias[c])
				for k := range e {
					want += float64(p.Factors[k][c]) * float64(lat[(i*e+k)*hw+j])
				}
				if got := out.Data()[(i*3+c)*hw+j]; math.Abs(float64(got)-want) > 1e-5 {
					t.Fatalf("pixel %d/%d/%d: %g, want %g", i, c, j, got, want)
				}
			}
		}
	}
	// A latent that is 1 in channel 3 only shows that channel's factors.
	one := make([]float32, e)
	one[3] = 1
	px, _ := p.RGB(tensor.MustNew(one, 1, e, 1, 1))
	if got := px.Data(); got[0] != p.Factors[3][0] || got[1] != p.Factors[3][1] || got[2] != p.Factors[3][2] {
		t.Errorf("unit latent 3 -> %v, want %v", got, p.Factors[3])
	}
	if _, err := p.RGB(tensor.MustNew(make([]float32, 3), 1, 3, 1, 1)); err == nil {
		t.Error("3-channel latents: no error")
	}
}
