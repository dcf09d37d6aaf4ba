package tinysd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// weightFile is each component's safetensors file name.
var weightFile = map[Component]string{
	TextEncoder: "model.safetensors",
	UNetDir:     "diffusion_pytorch_model.safetensors",
	VAEDir:      "diffusion_pytorch_model.safetensors",
}

// Export writes the model as a diffusers folder at dir: model_index.json,
// scheduler/, tokenizer/ (the given vocab.json and merges.txt contents),
// and text_encoder/, unet/, vae/ each with config.json and float16
// safetensors. It is written beside dir and renamed over it, so dir holds
// either the old folder or the whole new one.
func (c Config) Export(dir string, w weights.Source, vocabJSON, merges []byte) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("tinysd: export: %w", err)
	}
	if err := c.export(tmp, w, vocabJSON, merges); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("tinysd: export %s: %w", dir, err)
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("tinysd: export: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("tinysd: export: %w", err)
	}
	return os.RemoveAll(old)
}

func (c Config) export(dir string, w weights.Source, vocabJSON, merges []byte) error {
	type entry struct{ compvis, name string }
	files := map[Component][]entry{}
	for _, key := range w.Names() {
		comp, name, _, err := c.DiffusersName(key)
		if err != nil {
			return err
		}
		files[comp] = append(files[comp], entry{key, name})
	}
	for _, comp := range []Component{TextEncoder, UNetDir, VAEDir} {
		list := files[comp]
		if len(list) == 0 {
			return fmt.Errorf("no %s tensors", comp)
		}
		slices.SortFunc(list, func(a, b entry) int { return cmpString(a.name, b.name) })
		entries := make([]safetensors.Entry, len(list))
		for i, e := range list {
			shape, _ := w.Shape(e.compvis)
			if _, _, lin, _ := c.DiffusersName(e.compvis); lin && len(shape) == 4 {
				shape = shape[:2] // a 1x1 conv stored as diffusers' linear
			}
			entries[i] = safetensors.Entry{Name: e.name, DType: "F16", Shape: shape}
		}
		at := map[string]string{}
		for _, e := range list {
			at[e.name] = e.compvis
		}
		sub := filepath.Join(dir, string(comp))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		err := safetensors.WriteFile(filepath.Join(sub, weightFile[comp]), entries, map[string]string{"format": "pt"},
			func(e safetensors.Entry, dst []byte) error {
				v, _, err := w.Float32(at[e.Name])
				if err != nil {
					return err
				}
				return safetensors.EncodeFloat32(dst, v, e.DType)
			})
		if err != nil {
			return err
		}
	}
	for path, v := range c.configFiles() {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, path), append(b, '\n')); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(dir, "tokenizer", "vocab.json"), vocabJSON); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "tokenizer", "merges.txt"), merges)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// configFiles returns the folder's JSON files (path -> value), in the
// diffusers/transformers field names the config readers take.
func (c Config) configFiles() map[string]any {
	u, v, t := c.UNet, c.VAE, c.CLIP
	boc := func(base int, mult []int) []int {
		out := make([]int, len(mult))
		for i, m := range mult {
			out[i] = base * m
		}
		return out
	}
	var down, up []string
	for i := range u.ChannelMult {
		if slices.Contains(u.AttentionResolutions, 1<<i) {
			down = append(down, "CrossAttnDownBlock2D")
		} else {
			down = append(down, "DownBlock2D")
		}
	}
	for i := len(u.ChannelMult) - 1; i >= 0; i-- {
		if slices.Contains(u.AttentionResolutions, 1<<i) {
			up = append(up, "CrossAttnUpBlock2D")
		} else {
			up = append(up, "UpBlock2D")
		}
	}
	var vdown, vup []string
	for range v.ChMult {
		vdown = append(vdown, "DownEncoderBlock2D")
		vup = append(vup, "UpDecoderBlock2D")
	}
	return map[string]any{
		"model_index.json": map[string]any{
			"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
			"text_encoder": []string{"transformers", "CLIPTextModel"},
			"tokenizer":    []string{"transformers", "CLIPTokenizer"},
			"unet":         []string{"diffusers", "UNet2DConditionModel"},
			"vae":          []string{"diffusers", "AutoencoderKL"},
			"scheduler":    []string{"diffusers", "DDIMScheduler"},
		},
		"scheduler/scheduler_config.json": map[string]any{
			"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
			"beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
			"clip_sample": false, "set_alpha_to_one": false, "steps_offset": 1,
		},
		"tokenizer/tokenizer_config.json": map[string]any{
			"model_max_length": t.MaxPositions, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
			"pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "do_lower_case": true,
		},
		"text_encoder/config.json": map[string]any{
			"architectures": []string{"CLIPTextModel"}, "model_type": "clip_text_model",
			"vocab_size": t.VocabSize, "hidden_size": t.HiddenSize, "intermediate_size": t.IntermediateSize,
			"num_hidden_layers": t.NumLayers, "num_attention_heads": t.NumHeads,
			"max_position_embeddings": t.MaxPositions, "hidden_act": t.HiddenAct, "layer_norm_eps": t.LayerNormEps,
			"torch_dtype": "float16",
		},
		"unet/config.json": map[string]any{
			"_class_name": "UNet2DConditionModel", "sample_size": c.LatentSize(),
			"in_channels": u.InChannels, "out_channels": u.OutChannels,
			"block_out_channels": boc(u.ModelChannels, u.ChannelMult), "layers_per_block": u.NumResBlocks,
			"down_block_types": down, "up_block_types": up, "mid_block_type": "UNetMidBlock2DCrossAttn",
			"cross_attention_dim": u.ContextDim, "attention_head_dim": u.NumHeads,
			"transformer_layers_per_block": u.TransformerDepth, "use_linear_projection": u.UseLinearProjection,
			"norm_num_groups": u.NormGroups, "norm_eps": u.NormEps, "act_fn": "silu",
			"flip_sin_to_cos": true, "freq_shift": 0,
		},
		"vae/config.json": map[string]any{
			"_class_name": "AutoencoderKL", "sample_size": c.ImageSize,
			"in_channels": v.InChannels, "out_channels": v.OutChannels,
			"block_out_channels": boc(v.Ch, v.ChMult), "layers_per_block": v.NumResBlocks,
			"down_block_types": vdown, "up_block_types": vup, "latent_channels": v.ZChannels,
			"norm_num_groups": v.NormGroups, "scaling_factor": v.ScaleFactor, "act_fn": "silu",
		},
	}
}
