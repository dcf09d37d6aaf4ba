package checkpoint

import "strings"

// EMA weights in CompVis checkpoints.
//
// ldm's LitEma (ldm/modules/ema.py) keeps one buffer per UNet parameter,
// named after the parameter with its dots removed, so a training checkpoint
// holds e.g. model_ema.diffusion_modelinput_blocks00weight beside
// model.diffusion_model.input_blocks.0.0.weight, plus model_ema.decay and
// model_ema.num_updates. Released "EMA-only" files (v1-5-pruned-emaonly)
// already store the EMA weights under model.diffusion_model.*.
//
// Decision: like the CompVis loader (use_ema: False in v1-inference.yaml),
// model.diffusion_model.* is used when present; Options.UseEMA selects the
// EMA copy instead. A file whose UNet exists only as model_ema.* uses the
// EMA copy: there is nothing else to use. The model_ema.* keys stay listed
// under their own names.

const (
	emaPrefix  = "model_ema."
	unetPrefix = "model.diffusion_model."
)

// useEMA names the EMA UNet weights model.diffusion_model.* when asked to,
// or when the file has no other UNet weights. It reports whether it did.
func useEMA(tensors map[string]*entry, prefer bool) bool {
	hasModel := false
	var flat []string
	for name := range tensors {
		switch {
		case strings.HasPrefix(name, unetPrefix):
			hasModel = true
		case strings.HasPrefix(name, emaPrefix+"diffusion_model"):
			flat = append(flat, name)
		}
	}
	if len(flat) == 0 || (hasModel && !prefer) {
		return false
	}
	// With both copies, match by flattening the dotted names (exact);
	// otherwise rebuild the dots from the UNet's naming grammar.
	byFlat := map[string]string{}
	if hasModel {
		for name := range tensors {
			if strings.HasPrefix(name, unetPrefix) {
				byFlat[emaPrefix+flatten(strings.TrimPrefix(name, "model."))] = name
			}
		}
	}
	used := false
	for _, f := range flat {
		canon, ok := byFlat[f]
		if !hasModel {
			var dotted string
			dotted, ok = unflattenUNet(strings.TrimPrefix(f, emaPrefix))
			canon = "model." + dotted
		}
		if ok {
			tensors[canon] = tensors[f]
			used = true
		}
	}
	return used
}

// flatten removes the dots, as LitEma names its buffers.
func flatten(name string) string { return strings.ReplaceAll(name, ".", "") }

// unetWords are the name segments of the CompVis UNet (openaimodel.py and
// attention.py), longest first where one is a prefix of another.
var unetWords = []string{
	"diffusion_model", "input_blocks", "middle_block", "output_blocks", "time_embed",
	"in_layers", "emb_layers", "out_layers", "skip_connection", "transformer_blocks",
	"proj_in", "proj_out", "proj", "attn1", "attn2", "to_q", "to_k", "to_v", "to_out",
	"norm1", "norm2", "norm3", "norm", "ff", "net", "op", "conv", "out", "weight", "bias",
}

// unflattenUNet rebuilds a dotted UNet parameter name from its LitEma
// buffer name ("diffusion_modelinput_blocks11transformer_blocks0attn1to_qweight"
// -> "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight").
// Digits after input_blocks/output_blocks are a block index and a one-digit
// sub-module index (SD1.x sub-modules are 0..2); elsewhere a digit run is one
// index. It reports false for names outside that grammar.
func unflattenUNet(flat string) (string, bool) {
	var segs []string
	for rest := flat; rest != ""; {
		word := ""
		for _, w := range unetWords {
			if strings.HasPrefix(rest, w) {
				word = w
				break
			}
		}
		if word == "" {
			return "", false
		}
		segs = append(segs, word)
		rest = rest[len(word):]
		digits := len(rest) - len(strings.TrimLeft(rest, "0123456789"))
		if digits == 0 {
			continue
		}
		run := rest[:digits]
		rest = rest[digits:]
		if word == "input_blocks" || word == "output_blocks" {
			if digits < 2 {
				return "", false
			}
			segs = append(segs, run[:digits-1], run[digits-1:])
		} else {
			segs = append(segs, run)
		}
	}
	if len(segs) < 2 || segs[0] != "diffusion_model" {
		return "", false
	}
	return strings.Join(segs, "."), true
}
