// Command mkicon draws the Perfusion Studio application icon and writes it as
// a PNG: a rounded square in a night-blue to teal gradient, scattered noise
// dots that condense into a warm orb (an image emerging from diffusion), and a
// keyhole in the orb (Perfusion's key-locked concepts).
//
//	go run ./assets/internal/mkicon -o assets/icon.png
//
// The output is deterministic; a test checks that assets/icon.png matches it.
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
)

func main() {
	out := flag.String("o", "assets/icon.png", "output PNG path")
	size := flag.Int("size", 512, "width and height in pixels")
	flag.Parse()
	if err := write(*out, *size); err != nil {
		fmt.Fprintln(os.Stderr, "mkicon:", err)
		os.Exit(1)
	}
}

func write(path string, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create icon: %w", err)
	}
	if err := png.Encode(f, render(size)); err != nil {
		f.Close()
		return fmt.Errorf("encode icon: %w", err)
	}
	return f.Close()
}

// shape reports whether a point, in units of the icon's side (0..1), is inside.
type shape func(x, y float64) bool

// render draws the icon at size x size pixels.
func render(size int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	s := float64(size)

	// Background: rounded square, diagonal gradient.
	bg := linear{from: rgb(0x1d, 0x17, 0x4f), to: rgb(0x0e, 0x73, 0x7d), x0: 0.1 * s, y0: 0, x1: 0.9 * s, y1: s}
	fill(img, roundedSquare(0.04, 0.96, 0.2), bg)

	// Noise condensing into the orb: dots along a spiral, small and faint far
	// out, larger and brighter near the orb.
	rng := xorshift(0x9e3779b97f4a7c15)
	const dots = 70
	for i := range dots {
		t := float64(i) / dots                     // 0 far out .. 1 at the orb
		angle := 5.2*math.Pi*t + 0.6*rng.float()   // spiral inwards
		radius := 0.43 - 0.19*t + 0.03*rng.float() // distance from the centre
		cx := 0.5 + radius*math.Cos(angle)
		cy := 0.5 + radius*math.Sin(angle)
		r := 0.006 + 0.014*t*t + 0.004*rng.float()
		a := uint8(70 + 150*t)
		fill(img, disc(cx, cy, r), image.NewUniform(color.NRGBA{0xff, 0xe2, 0xb8, a}))
	}

	// The orb: radial gradient, warm gold at the top left to magenta.
	orb := radial{inner: rgb(0xff, 0xc8, 0x57), outer: rgb(0xd9, 0x3a, 0x7c), cx: 0.42 * s, cy: 0.40 * s, r: 0.32 * s}
	fill(img, disc(0.5, 0.5, 0.22), orb)

	// Keyhole through the orb, in the background's dark blue.
	keyhole := func(x, y float64) bool {
		if disc(0.5, 0.455, 0.06)(x, y) {
			return true
		}
		// Trapezoid below the circle, widening downwards.
		if y < 0.47 || y > 0.62 {
			return false
		}
		half := 0.025 + 0.02*(y-0.47)/0.15
		return math.Abs(x-0.5) <= half
	}
	fill(img, keyhole, image.NewUniform(rgb(0x1a, 0x1f, 0x55)))
	return img
}

// fill paints src over img wherever sh covers, antialiased by 4x4 supersampling.
func fill(img *image.NRGBA, sh shape, src image.Image) {
	b := img.Bounds()
	s := float64(b.Dx())
	mask := image.NewAlpha(b)
	const n = 4
	for py := b.Min.Y; py < b.Max.Y; py++ {
		for px := b.Min.X; px < b.Max.X; px++ {
			hits := 0
			for sy := range n {
				for sx := range n {
					x := (float64(px) + (float64(sx)+0.5)/n) / s
					y := (float64(py) + (float64(sy)+0.5)/n) / s
					if sh(x, y) {
						hits++
					}
				}
			}
			mask.SetAlpha(px, py, color.Alpha{uint8(hits * 255 / (n * n))})
		}
	}
	draw.DrawMask(img, b, src, b.Min, mask, b.Min, draw.Over)
}

func disc(cx, cy, r float64) shape {
	return func(x, y float64) bool {
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
	}
}

// roundedSquare spans lo..hi on both axes with corner radius r.
func roundedSquare(lo, hi, r float64) shape {
	return func(x, y float64) bool {
		if x < lo || x > hi || y < lo || y > hi {
			return false
		}
		// Distance into the nearest corner's square, if in one.
		dx := math.Max(lo+r-x, x-(hi-r))
		dy := math.Max(lo+r-y, y-(hi-r))
		if dx <= 0 || dy <= 0 {
			return true
		}
		return dx*dx+dy*dy <= r*r
	}
}

func rgb(r, g, b uint8) color.NRGBA { return color.NRGBA{r, g, b, 0xff} }

// mix interpolates two colours, t in 0..1.
func mix(a, b color.NRGBA, t float64) color.NRGBA {
	t = math.Max(0, math.Min(1, t))
	l := func(p, q uint8) uint8 { return uint8(math.Round(float64(p) + (float64(q)-float64(p))*t)) }
	return color.NRGBA{l(a.R, b.R), l(a.G, b.G), l(a.B, b.B), l(a.A, b.A)}
}

// linear is an unbounded gradient image from (x0,y0) to (x1,y1), in pixels.
type linear struct {
	from, to       color.NRGBA
	x0, y0, x1, y1 float64
}

func (g linear) ColorModel() color.Model { return color.NRGBAModel }
func (g linear) Bounds() image.Rectangle { return image.Rect(-1e9, -1e9, 1e9, 1e9) }
func (g linear) At(x, y int) color.Color {
	dx, dy := g.x1-g.x0, g.y1-g.y0
	t := ((float64(x)-g.x0)*dx + (float64(y)-g.y0)*dy) / (dx*dx + dy*dy)
	return mix(g.from, g.to, t)
}

// radial is an unbounded gradient image around (cx,cy) reaching outer at r pixels.
type radial struct {
	inner, outer color.NRGBA
	cx, cy, r    float64
}

func (g radial) ColorModel() color.Model { return color.NRGBAModel }
func (g radial) Bounds() image.Rectangle { return image.Rect(-1e9, -1e9, 1e9, 1e9) }
func (g radial) At(x, y int) color.Color {
	return mix(g.inner, g.outer, math.Hypot(float64(x)-g.cx, float64(y)-g.cy)/g.r)
}

// xorshift is a tiny deterministic generator, so the icon never changes
// unless this file does.
type xorshift uint64

func (s *xorshift) float() float64 {
	*s ^= *s << 13
	*s ^= *s >> 7
	*s ^= *s << 17
	return float64(*s>>11) / (1 << 53)
}
