package checkpoint

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// Family is a Stable Diffusion model generation.
type Family int

// Families.
const (
	FamilyUnknown Family = iota // not a Stable Diffusion model
	SD1                         // SD 1.x: CLIP ViT-L/14 text encoder, 768-wide context
	SD2                         // SD 2.x: OpenCLIP ViT-H text encoder, 1024-wide context
	SDXL                        // SDXL: two text encoders, conditioner.embedders.*
)

// String names the family.
func (f Family) String() string {
	if f < SD1 || f > SDXL {
		return "unknown"
	}
	return [...]string{"", "SD 1.x", "SD 2.x", "SDXL"}[f]
}

// Arch is what a checkpoint's tensor names and shapes say about its model.
// Nothing is read but names and shapes.
type Arch struct {
	Family        Family
	Variant       string // "" for text-to-image; "inpainting", "instruct-pix2pix", "unCLIP", ...
	InChannels    int    // UNet input channels: input_blocks.0.0.weight [C, in, 3, 3]
	ModelChannels int    // UNet base width C
	ContextDim    int    // cross-attention context width: attn2.to_k.weight [inner, ctx]
	TextWidth     int    // text encoder width: final_layer_norm.weight [W]
	UNet          bool   // UNet weights present
	VAE           bool   // VAE weights present
	TextEncoder   bool   // CLIP text encoder weights present
	EMA           bool   // UNet weights taken from model_ema.* (see Options.UseEMA)
}

const (
	textPrefix = "cond_stage_model.transformer.text_model."
	vaePrefix  = "first_stage_model."
)

// coreTensors must exist in every SD 1.x checkpoint; Validate reports the
// missing ones.
var coreTensors = []string{
	unetPrefix + "input_blocks.0.0.weight", unetPrefix + "time_embed.0.weight", unetPrefix + "out.2.weight",
	vaePrefix + "encoder.conv_in.weight", vaePrefix + "quant_conv.weight",
	vaePrefix + "post_quant_conv.weight", vaePrefix + "decoder.conv_in.weight",
	textPrefix + "embeddings.token_embedding.weight", textPrefix + "embeddings.position_embedding.weight",
	textPrefix + "final_layer_norm.weight",
}

// dim returns shape[i] of a tensor of the given rank, or 0.
func (c *Checkpoint) dim(name string, rank, i int) int {
	if e, ok := c.tensors[name]; ok && len(e.shape) == rank {
		return e.shape[i]
	}
	return 0
}

// hasPrefix reports whether any name starts with p.
func (c *Checkpoint) hasPrefix(p string) bool {
	i := sort.SearchStrings(c.names, p)
	return i < len(c.names) && strings.HasPrefix(c.names[i], p)
}

// hasPart reports whether any name contains s.
func (c *Checkpoint) hasPart(s string) bool {
	for _, n := range c.names {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// arch reads the architecture from names and shapes.
func (c *Checkpoint) arch() Arch {
	a := Arch{
		InChannels:    c.dim(unetPrefix+"input_blocks.0.0.weight", 4, 1),
		ModelChannels: c.dim(unetPrefix+"input_blocks.0.0.weight", 4, 0),
		TextWidth:     c.dim(textPrefix+"final_layer_norm.weight", 1, 0),
		UNet:          c.Has(unetPrefix + "input_blocks.0.0.weight"),
		VAE:           c.hasPrefix(vaePrefix + "decoder."),
		TextEncoder:   c.hasPrefix(textPrefix),
		EMA:           c.ema,
	}
	linearProj := false
	for _, n := range c.names {
		if strings.HasPrefix(n, unetPrefix) && strings.HasSuffix(n, ".attn2.to_k.weight") && a.ContextDim == 0 {
			a.ContextDim = c.dim(n, 2, 1)
		}
		if strings.HasPrefix(n, unetPrefix) && strings.HasSuffix(n, ".proj_in.weight") && len(c.tensors[n].shape) == 2 {
			linearProj = true // use_linear_in_transformer: SD 2.x
		}
	}
	openCLIP := c.hasPrefix("cond_stage_model.model.")
	labelEmb := c.hasPrefix(unetPrefix + "label_emb.")
	switch {
	case c.hasPrefix("conditioner.embedders.") || (labelEmb && !openCLIP) || a.ContextDim == 2048 || a.ContextDim == 1280:
		a.Family = SDXL
	case openCLIP || a.ContextDim == 1024 || a.TextWidth == 1024 || linearProj:
		a.Family = SD2
		if labelEmb {
			a.Variant = "unCLIP"
		}
	case a.UNet:
		a.Family = SD1
	}
	switch a.InChannels {
	case 0, 4:
	case 9:
		a.Variant = "inpainting"
	case 8:
		a.Variant = "instruct-pix2pix"
	default:
		a.Variant = fmt.Sprintf("%d-channel", a.InChannels)
	}
	return a
}

// Architecture tells which model the checkpoint holds. The error is nil for
// an SD 1.x text-to-image model; otherwise it says what the file is and what
// to do, wrapping ErrUnsupported (SD 2.x, SDXL, inpainting, ...) or
// ErrFormat (not a Stable Diffusion model). The Arch is filled in either way.
func (c *Checkpoint) Architecture() (Arch, error) {
	a := c.arch()
	switch a.Family {
	case FamilyUnknown:
		return a, fmt.Errorf("checkpoint: %s is not a Stable Diffusion model: %s; choose a full Stable Diffusion 1.x checkpoint "+
			"(.safetensors or .ckpt) or a diffusers model folder: %w", c.path, c.lookalike(), ErrFormat)
	case SD2:
		return a, fmt.Errorf("checkpoint: %s is a Stable Diffusion 2.x model (OpenCLIP text encoder, %d-wide context): "+
			"SD 2.x is not supported yet, choose an SD 1.x model such as SD 1.5 or a fine-tune of it: %w", c.path, a.ContextDim, ErrUnsupported)
	case SDXL:
		return a, fmt.Errorf("checkpoint: %s is an SDXL model: SDXL is not supported yet, choose an SD 1.x model such as SD 1.5 "+
			"or a fine-tune of it: %w", c.path, ErrUnsupported)
	}
	if a.Variant != "" {
		return a, fmt.Errorf("checkpoint: %s is an SD 1.x %s model (%d UNet input channels): only text-to-image models "+
			"(4 input channels) are supported yet, choose a regular SD 1.x model: %w", c.path, a.Variant, a.InChannels, ErrUnsupported)
	}
	return a, nil
}

// lookalike guesses what a non-SD file is, from its names.
func (c *Checkpoint) lookalike() string {
	if c.kind == KindDiffusers && !c.hasPrefix(unetPrefix) {
		return fmt.Sprintf("the diffusers folder lacks %s, so it has no UNet (an incomplete download?)", strings.Join(c.absent, " and "))
	}
	switch {
	case c.hasPart("lora_") || c.hasPart(".lora_down.") || c.hasPart(".lora_A."):
		return "it looks like a LoRA (add-on weights for a model), which is not supported yet"
	case c.hasPart("string_to_param") || c.Has("emb_params") || (len(c.names) <= 2 && !c.hasPrefix("model.")):
		return "it looks like a textual-inversion embedding"
	case c.hasPrefix("control_model.") || c.hasPart("input_hint_block"):
		return "it looks like a ControlNet"
	case c.hasPrefix(unetPrefix) || c.hasPrefix("model_ema."):
		return fmt.Sprintf("it has UNet weights but not %sinput_blocks.0.0.weight (the UNet's first convolution, conv_in): "+
			"the file is incomplete or damaged", unetPrefix)
	case c.Has("encoder.conv_in.weight") || c.Has("decoder.conv_in.weight") || (c.hasPrefix(vaePrefix) && !c.hasPrefix(textPrefix)):
		return "it looks like a standalone VAE"
	case (c.hasPrefix(textPrefix) || c.hasPrefix("text_model.")) && !c.hasPrefix(vaePrefix):
		return "it holds only a text encoder"
	}
	return fmt.Sprintf("it has no UNet weights (%sinput_blocks.0.0.weight)", unetPrefix)
}

// Validate checks that the checkpoint is a complete SD 1.x text-to-image
// model: Architecture, the core tensors of the UNet, VAE and text encoder,
// consistent widths between them, and convertible dtypes. Model packages
// check their full tensor sets with Require.
func (c *Checkpoint) Validate() error {
	a, err := c.Architecture()
	if err != nil {
		return err
	}
	var missing []string
	for _, n := range coreTensors {
		if !c.Has(n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		parts := []string{}
		for _, comp := range []struct {
			ok   bool
			what string
		}{{a.VAE, "VAE (first_stage_model.*)"}, {a.TextEncoder, "text encoder (" + textPrefix + "*)"}} {
			if !comp.ok {
				parts = append(parts, comp.what)
			}
		}
		if len(parts) > 0 {
			return fmt.Errorf("checkpoint: %s has no %s weights: it holds only part of a model, use a complete SD 1.x checkpoint: %w",
				c.path, strings.Join(parts, " or "), ErrFormat)
		}
		return &RequireError{Source: c.path, Missing: missing}
	}
	var problems []error
	if a.ContextDim != a.TextWidth {
		problems = append(problems, fmt.Errorf("the text encoder is %d wide but the UNet attends to %d-wide context", a.TextWidth, a.ContextDim))
	}
	latent := c.dim(vaePrefix+"post_quant_conv.weight", 4, 1)
	if out := c.dim(unetPrefix+"out.2.weight", 4, 0); out != a.InChannels || latent != a.InChannels {
		problems = append(problems, fmt.Errorf("UNet input/output channels %d/%d and VAE latent channels %d differ", a.InChannels, out, latent))
	}
	for _, n := range c.names {
		if !strings.HasPrefix(n, unetPrefix) && !strings.HasPrefix(n, vaePrefix) && !strings.HasPrefix(n, textPrefix) {
			continue
		}
		if _, err := safetensors.ToFloat32(nil, c.tensors[n].dtype); err != nil {
			return fmt.Errorf("checkpoint: %s: tensor %s has dtype %s, which cannot be converted: %w", c.path, n, c.tensors[n].dtype, ErrUnsupported)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("checkpoint: %s mixes parts of different models (%w): use a consistent SD 1.x checkpoint: %w",
			c.path, errors.Join(problems...), ErrFormat)
	}
	return nil
}

// Require checks that every named tensor exists with the given shape (a nil
// shape checks presence only; a negative dimension matches any size) and
// reports all missing and misshapen tensors in one *RequireError.
func (c *Checkpoint) Require(want map[string][]int) error {
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	e := &RequireError{Source: c.path}
	for _, n := range names {
		got, ok := c.Shape(n)
		switch {
		case !ok:
			e.Missing = append(e.Missing, n)
		case want[n] != nil && !shapeMatch(got, want[n]):
			e.Mismatched = append(e.Mismatched, Mismatch{Name: n, Got: got, Want: want[n]})
		}
	}
	if len(e.Missing) == 0 && len(e.Mismatched) == 0 {
		return nil
	}
	return e
}

// shapeMatch compares shapes; negative wanted dimensions match anything.
func shapeMatch(got, want []int) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if want[i] >= 0 && got[i] != want[i] {
			return false
		}
	}
	return true
}
