package vae

import (
	"fmt"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Preview is a fast approximate latent-to-RGB map: each pixel's RGB is a
// fixed linear function of its latent channels (plus bias), giving an
// image at latent resolution in about [-1, 1] without running the decoder.
type Preview struct {
	Factors [][3]float32 // one RGB row per latent channel
	Bias    [3]float32
}

// SD15Preview returns the widely used SD1.x approximation for latents in
// diffusion space (ScaleFactor * sample, what samplers hold). The factors
// are ComfyUI's SD15 latent_rgb_factors (comfy/latent_formats.py, class
// SD15), which has no bias.
func SD15Preview() Preview {
	return Preview{Factors: [][3]float32{
		//   R        G        B
		{0.3512, 0.2297, 0.3227},
		{0.3250, 0.4974, 0.2350},
		{-0.2829, 0.1762, 0.2721},
		{-0.2120, -0.2616, -0.7177},
	}}
}

// RGB maps latents [B, E, h, w] (E = len(Factors)) to an approximate image
// [B, 3, h, w] in about [-1, 1]. It is a plain computation on values (no
// gradient).
func (p Preview) RGB(latents tensor.Tensor) (tensor.Tensor, error) {
	if !latents.Valid() || latents.Rank() != 4 || latents.Dim(1) != len(p.Factors) {
		return tensor.Tensor{}, fmt.Errorf("vae: preview: latents %v, want [B, %d, h, w]", latents, len(p.Factors))
	}
	b, e, hw := latents.Dim(0), latents.Dim(1), latents.Dim(2)*latents.Dim(3)
	src := latents.Data()
	out := make([]float32, b*3*hw)
	for i := range b {
		for c := range 3 {
			dst := out[(i*3+c)*hw : (i*3+c+1)*hw]
			for j := range dst {
				dst[j] = p.Bias[c]
			}
			for k := range e {
				f, row := p.Factors[k][c], src[(i*e+k)*hw:(i*e+k+1)*hw]
				for j, v := range row {
					dst[j] += f * v
				}
			}
		}
	}
	return tensor.New(out, b, 3, latents.Dim(2), latents.Dim(3))
}
