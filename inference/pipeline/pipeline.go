// Package pipeline composes the Stable Diffusion 1.x models into
// text-to-image generation: it opens a checkpoint, loads the CLIP text
// encoder, the UNet and the VAE with their configs, finds the tokenizer, and
// runs prompt encoding, sampling with classifier-free guidance and decoding,
// as CompVis/stable-diffusion scripts/txt2img.py does (Rombach et al.,
// "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022),
// with the AUTOMATIC1111 web UI's prompt conventions (emphasis weights,
// prompts longer than 75 tokens) on request.
//
// The models know nothing of prompts, files or progress; this package is the
// only place that ties them together. Every long call takes a
// context.Context (checked between sampling steps and between UNet and VAE
// blocks) and reports progress through a callback.
//
// Legend: B batch, C latent channels (4), h, w latent size, H, W image size
// (H = f*h, f the VAE's downscale factor, 8 for SD1.x), T context tokens
// (77 per prompt chunk), D text width.
package pipeline

import (
	"fmt"

	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/sampler"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// Pipeline is a loaded SD1.x model ready to generate. Its models stay
// reachable for callers that train concepts (concepts/). Generate and
// EncodePrompts only read the models, and edits are given per call
// (Request.Edit, TextOptions.Words), so calls may run concurrently as long
// as nobody changes the models meanwhile.
type Pipeline struct {
	Path      string          // the checkpoint file or folder
	Arch      checkpoint.Arch // what the checkpoint holds
	Engine    *ops.Engine     // runs every model
	CLIP      *clip.Model     // text encoder
	UNet      *unet.Model     // noise predictor
	VAE       *vae.Model      // autoencoder
	Tokenizer *tokenizer.Tokenizer
	Schedule  *sampler.Schedule // training noise schedule (SD1.x's)

	sources []string // files loaded from (Sources)

	// trace, when set (tests), receives the intermediate values of
	// Generate: "uncond_embedding", "cond_embedding" ([B, T, D], a row
	// per image), "x_T", then per
	// 0-based step "eps_uncond", "eps_cond" (UNet outputs), "x" and
	// "pred_x0" (after the step), and last "decoded".
	trace tracer
}

// Limits on a request.
const (
	MaxSide  = 2048 // longest image side in pixels
	MaxBatch = 16   // images per Generate call
)

// NativeSize is the image side in pixels the model was trained at (512
// for SD1.x): the size its generations look best at. A config without a
// usable sample_size gives SD1.x's 512.
func (p *Pipeline) NativeSize() int {
	n := p.UNet.Config.SampleSize * p.latentFactor()
	if n <= 0 || n > 4096 || n%p.SizeMultiple() != 0 {
		return 512
	}
	return n
}

// latentFactor is how many image pixels one latent pixel spans
// (2^(levels-1) of the VAE: 8 for SD1.x).
func (p *Pipeline) latentFactor() int { return 1 << (len(p.VAE.Config.ChMult) - 1) }

// SizeMultiple is what image sides must be a multiple of: the VAE's
// downscale factor times the UNet's (each UNet level halves the latent, and
// the halves must be whole). 8 for SD1.x, whose UNet takes latents of any
// size.
func (p *Pipeline) SizeMultiple() int {
	return p.latentFactor() * p.UNet.SizeMultiple()
}

// sizeReason says where SizeMultiple comes from.
func (p *Pipeline) sizeReason() string {
	if u := p.UNet.SizeMultiple(); u > 1 {
		return fmt.Sprintf("this model works on 1/%d-size latents whose sides its UNet needs in multiples of %d", p.latentFactor(), u)
	}
	return fmt.Sprintf("this model works on 1/%d-size latents", p.latentFactor())
}

// checkSize explains what is wrong with an image size.
func (p *Pipeline) checkSize(width, height int) error {
	m := p.SizeMultiple()
	for _, s := range []struct {
		name string
		v    int
	}{{"width", width}, {"height", height}} {
		switch {
		case s.v <= 0:
			return fmt.Errorf("pipeline: %s %d: must be positive (a multiple of %d, e.g. 512)", s.name, s.v, m)
		case s.v > MaxSide:
			return fmt.Errorf("pipeline: %s %d is too large: at most %d pixels per side", s.name, s.v, MaxSide)
		case s.v%m != 0:
			lo := s.v / m * m
			if lo == 0 {
				lo = m
			}
			return fmt.Errorf("pipeline: %s %d is not a multiple of %d (%s); try %d or %d",
				s.name, s.v, m, p.sizeReason(), lo, lo+m)
		}
	}
	return nil
}
