package vae

import (
	"fmt"
	"image"
	"image/color"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// ToRGBA converts image i of x [B, 3, H, W] with values in [-1, 1] to an
// opaque RGBA image, as the reference pipeline does: each channel becomes
// uint8(255 * clamp((x+1)/2, 0, 1)) in float32, truncating (not rounding).
func ToRGBA(x tensor.Tensor, i int) (*image.RGBA, error) {
	if !x.Valid() || x.Rank() != 4 || x.Dim(1) != 3 {
		return nil, fmt.Errorf("vae: to image: %v, want [B, 3, H, W]", x)
	}
	if i < 0 || i >= x.Dim(0) {
		return nil, fmt.Errorf("vae: to image: index %d out of batch %d", i, x.Dim(0))
	}
	h, w := x.Dim(2), x.Dim(3)
	hw := h * w
	data := x.Data()[i*3*hw : (i+1)*3*hw]
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for xx := range w {
			p := y*w + xx
			img.SetRGBA(xx, y, color.RGBA{
				R: toByte(data[p]), G: toByte(data[hw+p]), B: toByte(data[2*hw+p]), A: 255,
			})
		}
	}
	return img, nil
}

// ToImages converts every image of x [B, 3, H, W] (see ToRGBA).
func ToImages(x tensor.Tensor) ([]*image.RGBA, error) {
	if !x.Valid() || x.Rank() != 4 {
		return nil, fmt.Errorf("vae: to images: %v, want [B, 3, H, W]", x)
	}
	out := make([]*image.RGBA, x.Dim(0))
	for i := range out {
		img, err := ToRGBA(x, i)
		if err != nil {
			return nil, err
		}
		out[i] = img
	}
	return out, nil
}

// toByte is uint8(trunc(255 * clamp((v+1)/2, 0, 1))) in float32; NaN gives 0.
func toByte(v float32) uint8 {
	u := (v + 1) / 2
	if !(u > 0) {
		return 0
	}
	if u > 1 {
		u = 1
	}
	return uint8(float32(255 * u))
}

// FromImages converts images of one size to x [B, 3, H, W] in [-1, 1]
// (v/127.5 - 1 per 8-bit channel), the encoder's input range.
func FromImages(imgs []image.Image) (tensor.Tensor, error) {
	if len(imgs) == 0 {
		return tensor.Tensor{}, fmt.Errorf("vae: from images: no images")
	}
	bounds := imgs[0].Bounds()
	h, w := bounds.Dy(), bounds.Dx()
	hw := h * w
	out := make([]float32, len(imgs)*3*hw)
	for i, img := range imgs {
		b := img.Bounds()
		if b.Dx() != w || b.Dy() != h {
			return tensor.Tensor{}, fmt.Errorf("vae: from images: image %d is %dx%d, image 0 is %dx%d", i, b.Dx(), b.Dy(), w, h)
		}
		base := out[i*3*hw : (i+1)*3*hw]
		for y := range h {
			for x := range w {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				p := y*w + x
				base[p] = float32(c.R)/127.5 - 1
				base[hw+p] = float32(c.G)/127.5 - 1
				base[2*hw+p] = float32(c.B)/127.5 - 1
			}
		}
	}
	return tensor.New(out, len(imgs), 3, h, w)
}
