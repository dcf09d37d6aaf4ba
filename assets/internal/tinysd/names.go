package tinysd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// The CompVis -> diffusers names the export writes: the reverse of
// inference/checkpoint's conversion (diffusers.go), for the layouts this
// package builds. A round-trip test reads the folder back through
// checkpoint.Open.

// Component is one folder of a diffusers pipeline.
type Component string

const (
	TextEncoder Component = "text_encoder"
	UNetDir     Component = "unet"
	VAEDir      Component = "vae"
)

// resnetToDiffusers maps UNet ResBlock parts to diffusers ResnetBlock2D.
var resnetToDiffusers = map[string]string{
	"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
	"out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
}

// DiffusersName returns the component and diffusers name of a CompVis
// key, and whether the weight is a VAE attention 1x1 conv that diffusers
// stores as a [C, C] linear.
func (c Config) DiffusersName(key string) (Component, string, bool, error) {
	switch {
	case strings.HasPrefix(key, clip.Prefix):
		return TextEncoder, "text_model." + strings.TrimPrefix(key, clip.Prefix), false, nil
	case strings.HasPrefix(key, unet.Prefix):
		n, err := c.unetName(strings.TrimPrefix(key, unet.Prefix))
		return UNetDir, n, false, err
	case strings.HasPrefix(key, vae.Prefix):
		n, lin, err := c.vaeName(strings.TrimPrefix(key, vae.Prefix))
		return VAEDir, n, lin, err
	}
	return "", "", false, fmt.Errorf("tinysd: %q belongs to no model", key)
}

func (c Config) unetName(k string) (string, error) {
	bad := fmt.Errorf("tinysd: no diffusers name for UNet tensor %q", k)
	p := strings.Split(k, ".")
	resnet := func(prefix string, rest []string) (string, error) {
		if len(rest) < 2 {
			return "", bad
		}
		part := strings.Join(rest[:len(rest)-1], ".")
		d, ok := resnetToDiffusers[part]
		if !ok {
			return "", bad
		}
		return prefix + d + "." + rest[len(rest)-1], nil
	}
	switch {
	case strings.HasPrefix(k, "input_blocks.0.0."):
		return "conv_in." + p[3], nil
	case strings.HasPrefix(k, "time_embed.0."):
		return "time_embedding.linear_1." + p[2], nil
	case strings.HasPrefix(k, "time_embed.2."):
		return "time_embedding.linear_2." + p[2], nil
	case strings.HasPrefix(k, "out.0."):
		return "conv_norm_out." + p[2], nil
	case strings.HasPrefix(k, "out.2."):
		return "conv_out." + p[2], nil
	case strings.HasPrefix(k, "middle_block.0."):
		return resnet("mid_block.resnets.0.", p[2:])
	case strings.HasPrefix(k, "middle_block.1."):
		return "mid_block.attentions.0." + strings.Join(p[2:], "."), nil
	case strings.HasPrefix(k, "middle_block.2."):
		return resnet("mid_block.resnets.1.", p[2:])
	case len(p) < 4:
		return "", bad
	}
	n, err := strconv.Atoi(p[1])
	if err != nil {
		return "", bad
	}
	L := c.UNet.NumResBlocks
	per := L + 1
	rest := strings.Join(p[3:], ".")
	switch p[0] {
	case "input_blocks":
		i, j := (n-1)/per, (n-1)%per
		switch {
		case j == L && p[2] == "0" && p[3] == "op":
			return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", i, strings.Join(p[4:], ".")), nil
		case p[2] == "0":
			return resnet(fmt.Sprintf("down_blocks.%d.resnets.%d.", i, j), p[3:])
		case p[2] == "1":
			return fmt.Sprintf("down_blocks.%d.attentions.%d.%s", i, j, rest), nil
		}
	case "output_blocks":
		i, j := n/per, n%per
		switch {
		case p[2] == "0":
			return resnet(fmt.Sprintf("up_blocks.%d.resnets.%d.", i, j), p[3:])
		case p[3] == "conv": // Upsample: output_blocks.n.1.conv (no attention) or .2.conv
			return fmt.Sprintf("up_blocks.%d.upsamplers.0.conv.%s", i, strings.Join(p[4:], ".")), nil
		case p[2] == "1":
			return fmt.Sprintf("up_blocks.%d.attentions.%d.%s", i, j, rest), nil
		}
	}
	return "", bad
}

var vaeAttnToDiffusers = map[string]string{
	"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0",
}

func (c Config) vaeName(k string) (string, bool, error) {
	bad := fmt.Errorf("tinysd: no diffusers name for VAE tensor %q", k)
	p := strings.Split(k, ".")
	last := p[len(p)-1]
	res := func(prefix string, part string) (string, bool, error) {
		switch part {
		case "norm1", "conv1", "norm2", "conv2":
		case "nin_shortcut":
			part = "conv_shortcut"
		default:
			return "", false, bad
		}
		return prefix + part + "." + last, false, nil
	}
	switch {
	case len(p) == 2 && (p[0] == "quant_conv" || p[0] == "post_quant_conv"):
		return k, false, nil
	case len(p) == 3 && (p[1] == "conv_in" || p[1] == "conv_out"):
		return k, false, nil
	case len(p) == 3 && p[1] == "norm_out":
		return p[0] + ".conv_norm_out." + last, false, nil
	case len(p) == 5 && p[1] == "mid" && (p[2] == "block_1" || p[2] == "block_2"):
		j := map[string]string{"block_1": "0", "block_2": "1"}[p[2]]
		return res(p[0]+".mid_block.resnets."+j+".", p[3])
	case len(p) == 5 && p[1] == "mid" && p[2] == "attn_1":
		d, ok := vaeAttnToDiffusers[p[3]]
		if !ok {
			return "", false, bad
		}
		return p[0] + ".mid_block.attentions.0." + d + "." + last, p[3] != "norm" && last == "weight", nil
	case len(p) < 5:
		return "", false, bad
	}
	i, err := strconv.Atoi(p[2])
	if err != nil {
		return "", false, bad
	}
	switch {
	case p[0] == "encoder" && p[1] == "down" && p[3] == "block" && len(p) == 7:
		return res(fmt.Sprintf("encoder.down_blocks.%d.resnets.%s.", i, p[4]), p[5])
	case p[0] == "encoder" && p[1] == "down" && p[3] == "downsample":
		return fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv.%s", i, last), false, nil
	case p[0] == "decoder" && p[1] == "up" && p[3] == "block" && len(p) == 7:
		return res(fmt.Sprintf("decoder.up_blocks.%d.resnets.%s.", len(c.VAE.ChMult)-1-i, p[4]), p[5])
	case p[0] == "decoder" && p[1] == "up" && p[3] == "upsample":
		return fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv.%s", len(c.VAE.ChMult)-1-i, last), false, nil
	}
	return "", false, bad
}
