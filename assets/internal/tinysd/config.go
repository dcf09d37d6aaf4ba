// Package tinysd defines the default model: a Stable Diffusion 1.x-family
// text-to-image model small enough to train on two CPU cores and embed in
// the app. It holds the three configs (a CLIP-style text transformer, a
// UNet with cross-attention, a small KL autoencoder with a 4x downsampling
// factor), their initialisation, FLOP counts, and the export to a
// diffusers folder that inference/pipeline.Load reads like any user
// checkpoint. The app never imports this package.
package tinysd

import (
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// Config is the whole model: image size and the three sub-configs.
type Config struct {
	ImageSize int // training and default image size in pixels (64, or 32)
	CLIP      clip.Config
	UNet      unet.Config
	VAE       vae.Config
}

// Default returns the default model's config for a vocabulary of vocab ids
// and images of size x size pixels (64 by default; 32 is the cheaper
// option). Sizes are justified in assets/README.md.
func Default(vocab, size int) Config {
	c := Config{
		ImageSize: size,
		CLIP: clip.Config{
			VocabSize:        vocab,
			HiddenSize:       128,
			NumLayers:        4,
			NumHeads:         4,
			IntermediateSize: 512,
			MaxPositions:     77, // the tokenizer's ContextLen: prompts need no special path
			LayerNormEps:     1e-5,
			HiddenAct:        clip.QuickGELU,
		},
		UNet: unet.Config{
			InChannels:           4,
			OutChannels:          4,
			ModelChannels:        48,
			ChannelMult:          []int{1, 2, 3}, // 48, 96, 144 channels at 16, 8, 4 latent pixels
			NumResBlocks:         1,
			AttentionResolutions: []int{4, 2, 1}, // cross-attention at every level (SD1.5 order), for Perfusion to edit
			NumHeads:             4,
			NumHeadChannels:      -1,
			TransformerDepth:     1,
			ContextDim:           128,
			NormGroups:           16, // 32 does not divide 48
			NormEps:              1e-5,
		},
		VAE: vae.Config{
			InChannels:   3,
			OutChannels:  3,
			Ch:           32,
			ChMult:       []int{1, 1, 2}, // 4x downsampling: 64x64 images, 16x16 latents
			NumResBlocks: 1,
			AttnLevels:   []int{},
			ZChannels:    4,
			EmbedDim:     4,
			DoubleZ:      true,
			ScaleFactor:  1, // set from the trained encoder's latent spread (see SetScale)
			NormGroups:   32,
		},
	}
	c.UNet.SampleSize = c.LatentSize() // diffusers' sample_size: the latent side
	return c
}

// LatentSize is the latent side for the config's image size.
func (c Config) LatentSize() int { return c.ImageSize >> (len(c.VAE.ChMult) - 1) }
