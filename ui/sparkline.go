package ui

import (
	"image"
	"image/color"
	"math"
	"slices"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// Sparkline is a small line chart of a series (the training loss), scaled
// to its own minimum and maximum, newest on the right.
type Sparkline struct {
	widget.BaseWidget
	values []float64
}

// newSparkline returns an empty sparkline.
func newSparkline() *Sparkline {
	s := &Sparkline{}
	s.ExtendBaseWidget(s)
	return s
}

// SetValues replaces the series and redraws.
func (s *Sparkline) SetValues(v []float64) {
	s.values = slices.Clone(v)
	s.Refresh()
}

// Values returns the series shown.
func (s *Sparkline) Values() []float64 { return slices.Clone(s.values) }

// CreateRenderer draws the series into a raster.
func (s *Sparkline) CreateRenderer() fyne.WidgetRenderer {
	r := canvas.NewRaster(s.draw)
	return widget.NewSimpleRenderer(r)
}

// MinSize is a strip wide enough to read a trend.
func (s *Sparkline) MinSize() fyne.Size { return fyne.NewSize(200, 40) }

// draw plots the finite values of the series as a polyline in w × h
// pixels.
func (s *Sparkline) draw(w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	var vs []float64
	for _, v := range s.values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			vs = append(vs, v)
		}
	}
	if len(vs) < 2 || w < 2 || h < 2 {
		return img
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	if hi == lo {
		hi = lo + 1
	}
	c := color.NRGBAModel.Convert(theme.Color(theme.ColorNamePrimary)).(color.NRGBA)
	pt := func(i int) (float64, float64) {
		x := float64(i) / float64(len(vs)-1) * float64(w-1)
		y := (1 - (vs[i]-lo)/(hi-lo)) * float64(h-1)
		return x, y
	}
	for i := 1; i < len(vs); i++ {
		x0, y0 := pt(i - 1)
		x1, y1 := pt(i)
		n := int(max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
		for k := 0; k <= n; k++ {
			f := float64(k) / float64(n)
			img.SetNRGBA(int(math.Round(x0+f*(x1-x0))), int(math.Round(y0+f*(y1-y0))), c)
		}
	}
	return img
}
