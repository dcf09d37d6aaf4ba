package checkpoint

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/internal/regfile"
)

// Diffusers folders and their conversion to the CompVis names: the one
// place where names are translated.
//
// The mapping is diffusers' convert_from_ckpt.py read backwards
// (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
// convert_ldm_clip_checkpoint; see shared/golden/tiny_diffusers/README.md),
// with the block counts read from the folder's own tensor names:
//
//	UNet (prefix model.diffusion_model.), L = resnets per down block:
//	  conv_in                          input_blocks.0.0
//	  time_embedding.linear_1/2        time_embed.0/2
//	  down_blocks.i.resnets.j          input_blocks.(1+i(L+1)+j).0
//	  down_blocks.i.attentions.j       input_blocks.(1+i(L+1)+j).1
//	  down_blocks.i.downsamplers.0     input_blocks.(1+i(L+1)+L).0.op
//	  mid_block.resnets.0/attentions.0/resnets.1  middle_block.0/1/2
//	  up_blocks.i.resnets.j            output_blocks.(i(L+1)+j).0
//	  up_blocks.i.attentions.j         output_blocks.(i(L+1)+j).1
//	  up_blocks.i.upsamplers.0         output_blocks.(i(L+1)+L).{1, or 2 after attention}
//	  conv_norm_out/conv_out           out.0/out.2
//	  resnet norm1/conv1/time_emb_proj/norm2/conv2/conv_shortcut
//	                                   in_layers.0/in_layers.2/emb_layers.1/out_layers.0/out_layers.3/skip_connection
//	  transformer internals            unchanged
//	VAE (prefix first_stage_model.), n = decoder up blocks:
//	  {en,de}coder.conv_norm_out       {en,de}coder.norm_out
//	  encoder.down_blocks.i.resnets.j  encoder.down.i.block.j
//	  encoder.down_blocks.i.downsamplers.0  encoder.down.i.downsample
//	  decoder.up_blocks.i.resnets.j    decoder.up.(n-1-i).block.j (reversed)
//	  decoder.up_blocks.i.upsamplers.0 decoder.up.(n-1-i).upsample
//	  mid_block.resnets.0/1            mid.block_1/2
//	  mid_block.attentions.0.group_norm/to_q/to_k/to_v/to_out.0 (or legacy
//	  query/key/value/proj_attn)       mid.attn_1.norm/q/k/v/proj_out, linear
//	                                   weights [C, C] reshaped to [C, C, 1, 1]
//	  resnet conv_shortcut             nin_shortcut
//	Text encoder: text_model.*         cond_stage_model.transformer.text_model.*

// component is one model folder of a pipeline and its weight file names,
// in order of preference (full precision first, as diffusers loads by
// default).
type component struct {
	dir, prefix string
	files       []string
	rename      func(name string, l layout) (string, bool)
}

var components = []component{
	{"unet", "model.diffusion_model.", []string{"diffusion_pytorch_model"}, unetName},
	{"vae", "first_stage_model.", []string{"diffusion_pytorch_model"}, vaeName},
	{"text_encoder", "cond_stage_model.transformer.", []string{"model", "pytorch_model"}, textName},
}

// configFiles maps Config names to files in the folder.
var configFiles = map[string]string{
	"model_index":  "model_index.json",
	"unet":         "unet/config.json",
	"vae":          "vae/config.json",
	"text_encoder": "text_encoder/config.json",
	"scheduler":    "scheduler/scheduler_config.json",
	"tokenizer":    "tokenizer/tokenizer_config.json",
}

// maxConfigSize bounds a config.json.
const maxConfigSize = 1 << 20

// openDiffusers opens the unet, vae and text_encoder of a pipeline folder.
func openDiffusers(dir string) (*Checkpoint, error) {
	c := &Checkpoint{kind: KindDiffusers, tensors: map[string]*entry{}, configs: map[string]json.RawMessage{}}
	for _, comp := range components {
		if err := reachable(filepath.Join(dir, comp.dir)); err != nil {
			return nil, err
		}
	}
	for name, file := range configFiles {
		p := filepath.Join(dir, file)
		b, err := readConfig(p)
		if err != nil {
			return nil, err
		}
		if b != nil {
			c.configs[name] = b
			c.sources = append(c.sources, p)
		}
	}
	if err := checkPipeline(dir, c.configs); err != nil {
		return nil, err
	}
	var found, missing []string
	for _, comp := range components {
		ok, err := c.addComponent(dir, comp)
		if err != nil {
			c.Close()
			return nil, err
		}
		if ok {
			found = append(found, comp.dir)
		} else {
			missing = append(missing, fmt.Sprintf("%s/ (%s.safetensors or .bin)", comp.dir, comp.files[0]))
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("checkpoint: folder %s has no unet/, vae/ or text_encoder/ weights: "+
			"choose a model file, or a diffusers model folder (the one holding model_index.json): %w", dir, ErrFormat)
	}
	c.absent = missing
	return c, nil
}

// reachable reports a path that exists but cannot be opened (a broken
// symbolic link, a link loop, no permission) rather than treating it as
// absent.
func reachable(path string) error {
	_, err := os.Stat(path)
	if err == nil {
		return nil
	}
	if _, lerr := os.Lstat(path); lerr != nil && os.IsNotExist(err) {
		return nil // simply absent
	}
	return fmt.Errorf("checkpoint: %s cannot be opened: %v: %w", path, err, ErrFormat)
}

// readConfig reads a JSON file, or returns nil if it does not exist.
func readConfig(path string) (json.RawMessage, error) {
	f, _, err := regfile.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		if _, ok := err.(*fs.PathError); ok {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		return nil, fmt.Errorf("checkpoint: %w: %w", err, ErrFormat)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if len(b) > maxConfigSize || !json.Valid(b) {
		return nil, fmt.Errorf("checkpoint: %s is not valid JSON (damaged download?): %w", path, ErrFormat)
	}
	return b, nil
}

// checkPipeline refuses pipelines other than SD 1.x / 2.x text-to-image
// ones before their names fail to convert.
func checkPipeline(dir string, configs map[string]json.RawMessage) error {
	var index struct {
		Class string `json:"_class_name"`
	}
	json.Unmarshal(configs["model_index"], &index)
	var unet struct {
		AddEmbed string `json:"addition_embed_type"`
		Cross    any    `json:"cross_attention_dim"`
	}
	json.Unmarshal(configs["unet"], &unet)
	_, err := os.Stat(filepath.Join(dir, "text_encoder_2"))
	if strings.Contains(index.Class, "XL") || unet.AddEmbed == "text_time" || err == nil {
		return fmt.Errorf("checkpoint: %s is an SDXL pipeline (%s): SDXL is not supported yet, use a Stable Diffusion 1.x model: %w",
			dir, index.Class, ErrUnsupported)
	}
	return nil
}

// layout holds the block counts a conversion needs, read from the names.
type layout struct {
	layers int          // UNet resnets per down block
	upAttn map[int]bool // UNet up blocks with attentions
	vaeUp  int          // VAE decoder up blocks
}

// addComponent opens one component's weights, if present, and adds them
// under their converted names.
func (c *Checkpoint) addComponent(dir string, comp component) (bool, error) {
	paths, err := weightFiles(filepath.Join(dir, comp.dir), comp.files)
	if err != nil || len(paths) == 0 {
		return false, err
	}
	raw := map[string]*entry{}
	for _, p := range paths {
		m, _, closer, err := readWeights(p)
		if err != nil {
			return false, err
		}
		c.closers = append(c.closers, closer)
		c.sources = append(c.sources, p)
		for n, e := range m {
			raw[n] = e
		}
	}
	l := readLayout(raw)
	var unknown []string
	for name, e := range raw {
		canon, ok := comp.rename(name, l)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		canon = comp.prefix + canon
		if comp.dir == "vae" && isVAEAttnWeight(canon) && len(e.shape) == 2 {
			e.shape = []int{e.shape[0], e.shape[1], 1, 1} // same bytes
		}
		if prev, dup := c.tensors[canon]; dup {
			return false, fmt.Errorf("checkpoint: %s and %s both map to %s: %w", prev.origin, e.origin, canon, ErrFormat)
		}
		c.tensors[canon] = e
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return false, fmt.Errorf("checkpoint: %s/%s has %d tensors this program cannot place (%s...): "+
			"not a Stable Diffusion 1.x %s: %w", dir, comp.dir, len(unknown), strings.Join(unknown[:min(3, len(unknown))], ", "), comp.dir, ErrUnsupported)
	}
	return true, nil
}

// weightFiles picks a component's weight files: the first of
// <base>.safetensors, <base>.fp16.safetensors, <base>.bin, <base>.fp16.bin
// that exists, or the shards listed by its .index.json.
func weightFiles(dir string, bases []string) ([]string, error) {
	for _, ext := range []string{".safetensors", ".fp16.safetensors", ".bin", ".fp16.bin"} {
		for _, base := range bases {
			p := filepath.Join(dir, base+ext)
			if _, err := os.Stat(p); err == nil {
				return []string{p}, nil
			}
			if err := reachable(p); err != nil {
				return nil, err
			}
			idx, err := readConfig(p + ".index.json")
			if err != nil || idx == nil {
				continue
			}
			var shards struct {
				WeightMap map[string]string `json:"weight_map"`
			}
			if err := json.Unmarshal(idx, &shards); err != nil || len(shards.WeightMap) == 0 {
				return nil, fmt.Errorf("checkpoint: %s.index.json has no weight_map: %w", p, ErrFormat)
			}
			seen := map[string]bool{}
			var out []string
			for _, f := range shards.WeightMap {
				if !seen[f] && filepath.Base(f) == f {
					seen[f] = true
					out = append(out, filepath.Join(dir, f))
				}
			}
			sort.Strings(out)
			return out, nil
		}
	}
	return nil, nil
}

// readLayout counts the blocks the renames depend on.
func readLayout(raw map[string]*entry) layout {
	l := layout{upAttn: map[int]bool{}}
	for name := range raw {
		p := strings.Split(name, ".")
		if len(p) > 3 && p[0] == "down_blocks" && p[2] == "resnets" {
			if j, ok := index(p[3]); ok && j+1 > l.layers {
				l.layers = j + 1
			}
		}
		if len(p) > 2 && p[0] == "up_blocks" && p[2] == "attentions" {
			if i, ok := index(p[1]); ok {
				l.upAttn[i] = true
			}
		}
		if len(p) > 2 && p[0] == "decoder" && p[1] == "up_blocks" {
			if i, ok := index(p[2]); ok && i+1 > l.vaeUp {
				l.vaeUp = i + 1
			}
		}
	}
	return l
}

// wellFormed rejects names with empty segments ("a..b", "a.", "").
func wellFormed(name string) bool {
	return name != "" && !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, ".") && !strings.Contains(name, "..")
}

// index parses a small block index.
func index(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0 && n < 1000 && strconv.Itoa(n) == s
}

// resnetNames maps diffusers ResnetBlock2D parts to the UNet ResBlock ones.
var resnetNames = map[string]string{
	"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
	"norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection",
}

// unetName converts a diffusers UNet2DConditionModel name.
func unetName(name string, l layout) (string, bool) {
	if !wellFormed(name) {
		return "", false
	}
	p := strings.Split(name, ".")
	tail := func(k int) string { return strings.Join(p[k:], ".") }
	switch {
	case len(p) == 2 && p[0] == "conv_in":
		return "input_blocks.0.0." + p[1], true
	case len(p) == 2 && p[0] == "conv_norm_out":
		return "out.0." + p[1], true
	case len(p) == 2 && p[0] == "conv_out":
		return "out.2." + p[1], true
	case len(p) == 3 && p[0] == "time_embedding" && p[1] == "linear_1":
		return "time_embed.0." + p[2], true
	case len(p) == 3 && p[0] == "time_embedding" && p[1] == "linear_2":
		return "time_embed.2." + p[2], true
	case len(p) >= 4 && p[0] == "mid_block":
		switch p[1] + "." + p[2] {
		case "resnets.0":
			return resnet("middle_block.0.", p[3:])
		case "attentions.0":
			return "middle_block.1." + tail(3), true
		case "resnets.1":
			return resnet("middle_block.2.", p[3:])
		}
		return "", false
	case len(p) < 5 || (p[0] != "down_blocks" && p[0] != "up_blocks"):
		return "", false
	}
	i, ok1 := index(p[1])
	j, ok2 := index(p[3])
	if !ok1 || !ok2 || l.layers == 0 {
		return "", false
	}
	per := l.layers + 1
	if p[0] == "down_blocks" {
		at := 1 + i*per + j
		switch p[2] {
		case "resnets":
			return resnet(fmt.Sprintf("input_blocks.%d.0.", at), p[4:])
		case "attentions":
			return fmt.Sprintf("input_blocks.%d.1.", at) + tail(4), true
		case "downsamplers":
			if j == 0 && len(p) == 6 && p[4] == "conv" {
				return fmt.Sprintf("input_blocks.%d.0.op.", 1+i*per+l.layers) + tail(5), true
			}
		}
		return "", false
	}
	switch p[2] {
	case "resnets":
		return resnet(fmt.Sprintf("output_blocks.%d.0.", i*per+j), p[4:])
	case "attentions":
		return fmt.Sprintf("output_blocks.%d.1.", i*per+j) + tail(4), true
	case "upsamplers":
		if j == 0 && len(p) == 6 && p[4] == "conv" {
			sub := 1
			if l.upAttn[i] {
				sub = 2
			}
			return fmt.Sprintf("output_blocks.%d.%d.conv.", i*per+l.layers, sub) + tail(5), true
		}
	}
	return "", false
}

// resnet converts the inside of a resnet.
func resnet(prefix string, p []string) (string, bool) {
	if len(p) != 2 || resnetNames[p[0]] == "" {
		return "", false
	}
	return prefix + resnetNames[p[0]] + "." + p[1], true
}

// vaeAttnNames maps diffusers attention parts (current and legacy) to the
// CompVis AttnBlock ones.
var vaeAttnNames = map[string]string{
	"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
	"query": "q", "key": "k", "value": "v", "proj_attn": "proj_out",
}

// vaeName converts a diffusers AutoencoderKL name.
func vaeName(name string, l layout) (string, bool) {
	if !wellFormed(name) {
		return "", false
	}
	p := strings.Split(name, ".")
	last := p[len(p)-1]
	switch {
	case len(p) == 2 && (p[0] == "quant_conv" || p[0] == "post_quant_conv"):
		return name, true
	case len(p) < 3 || (p[0] != "encoder" && p[0] != "decoder"):
		return "", false
	case len(p) == 3 && (p[1] == "conv_in" || p[1] == "conv_out"):
		return name, true
	case len(p) == 3 && p[1] == "conv_norm_out":
		return p[0] + ".norm_out." + last, true
	case len(p) >= 5 && p[1] == "mid_block" && p[2] == "resnets" && (p[3] == "0" || p[3] == "1"):
		return vaeResnet(p[0]+".mid.block_"+map[string]string{"0": "1", "1": "2"}[p[3]]+".", p[4:])
	case len(p) >= 6 && p[1] == "mid_block" && p[2] == "attentions" && p[3] == "0":
		part := vaeAttnNames[strings.Join(p[4:len(p)-1], ".")]
		if part == "" {
			return "", false
		}
		return p[0] + ".mid.attn_1." + part + "." + last, true
	case len(p) < 6:
		return "", false
	}
	i, ok1 := index(p[2])
	j, ok2 := index(p[4])
	if !ok1 || !ok2 {
		return "", false
	}
	if p[0] == "encoder" && p[1] == "down_blocks" {
		switch {
		case p[3] == "resnets":
			return vaeResnet(fmt.Sprintf("encoder.down.%d.block.%d.", i, j), p[5:])
		case p[3] == "downsamplers" && j == 0 && len(p) == 7 && p[5] == "conv":
			return fmt.Sprintf("encoder.down.%d.downsample.conv.%s", i, last), true
		}
	}
	if p[0] == "decoder" && p[1] == "up_blocks" && i < l.vaeUp {
		up := l.vaeUp - 1 - i
		switch {
		case p[3] == "resnets":
			return vaeResnet(fmt.Sprintf("decoder.up.%d.block.%d.", up, j), p[5:])
		case p[3] == "upsamplers" && j == 0 && len(p) == 7 && p[5] == "conv":
			return fmt.Sprintf("decoder.up.%d.upsample.conv.%s", up, last), true
		}
	}
	return "", false
}

// vaeResnet converts the inside of a VAE resnet.
func vaeResnet(prefix string, p []string) (string, bool) {
	if len(p) != 2 {
		return "", false
	}
	switch p[0] {
	case "norm1", "conv1", "norm2", "conv2":
		return prefix + p[0] + "." + p[1], true
	case "conv_shortcut":
		return prefix + "nin_shortcut." + p[1], true
	}
	return "", false
}

// textName converts a transformers CLIPTextModel name.
func textName(name string, _ layout) (string, bool) {
	if strings.HasPrefix(name, "text_model.") && wellFormed(name) {
		return name, true
	}
	return "", false
}
