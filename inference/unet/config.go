package unet

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Prefix is the checkpoint key prefix of the UNet's tensors.
const Prefix = "model.diffusion_model."

// Config holds the UNet hyper-parameters, named after the CompVis
// unet_config params (openaimodel.UNetModel).
type Config struct {
	InChannels    int   // in_channels: latent channels in
	OutChannels   int   // out_channels: eps channels out
	ModelChannels int   // model_channels: width of level 0
	ChannelMult   []int // channel_mult: width of level i = ModelChannels*ChannelMult[i]
	NumResBlocks  int   // num_res_blocks: ResBlocks per level on the way down (one more up)
	// AttentionResolutions lists the downsample factors (1, 2, 4, ...) whose
	// levels get a SpatialTransformer after each ResBlock. The middle block
	// always has one.
	AttentionResolutions []int
	NumHeads             int // num_heads: used when NumHeadChannels <= 0
	NumHeadChannels      int // num_head_channels: head width (SD2: 64); <= 0 means use NumHeads
	TransformerDepth     int // transformer_depth: BasicTransformerBlocks per SpatialTransformer
	ContextDim           int // context_dim: width of the text conditioning
	// UseLinearProjection: proj_in/proj_out are Linear layers on tokens
	// (SD2's use_linear_in_transformer) instead of 1x1 convs (SD1.x).
	UseLinearProjection bool
	NormGroups          int     // GroupNorm32 groups (32)
	NormEps             float32 // ResBlock / out GroupNorm eps (1e-5)
	// SampleSize is the latent side the model was trained at (diffusers'
	// sample_size; 64 for SD1.x, whose CompVis configs do not give it).
	SampleSize int
}

// Fixed by the CompVis code rather than by the config.
const (
	transformerNormEps = 1e-6 // SpatialTransformer GroupNorm (attention.py Normalize)
	layerNormEps       = 1e-5 // BasicTransformerBlock LayerNorms (torch default)
)

// SD15 is Stable Diffusion 1.5's UNet: the unet_config of
// configs/stable-diffusion/v1-inference.yaml (CompVis/stable-diffusion).
func SD15() Config {
	return Config{
		InChannels:           4,
		OutChannels:          4,
		ModelChannels:        320,
		ChannelMult:          []int{1, 2, 4, 4},
		NumResBlocks:         2,
		AttentionResolutions: []int{4, 2, 1},
		NumHeads:             8,
		NumHeadChannels:      -1,
		TransformerDepth:     1,
		ContextDim:           768,
		NormGroups:           32,
		NormEps:              1e-5,
		SampleSize:           64,
	}
}

// TimeEmbedDim is the width of the time embedding (4 * model_channels).
func (c Config) TimeEmbedDim() int { return 4 * c.ModelChannels }

// hasAttention reports whether the level with downsample factor ds has
// SpatialTransformers.
func (c Config) hasAttention(ds int) bool { return slices.Contains(c.AttentionResolutions, ds) }

// heads returns (heads, head width) for a transformer of ch channels.
func (c Config) heads(ch int) (int, int) {
	if c.NumHeadChannels > 0 {
		return ch / c.NumHeadChannels, c.NumHeadChannels
	}
	return c.NumHeads, ch / c.NumHeads
}

// Validate checks that the sizes fit together.
func (c Config) Validate() error {
	switch {
	case len(c.ChannelMult) > maxLevels || c.NumResBlocks > maxResBlocks || c.TransformerDepth > maxDepth ||
		c.ModelChannels > maxWidth || c.InChannels > maxWidth || c.OutChannels > maxWidth || c.ContextDim > maxWidth:
		return fmt.Errorf("unet: config: sizes beyond any SD model (%d levels, %d res blocks, depth %d, widths %d/%d/%d, context %d): the file is not an SD 1.x UNet or is corrupt",
			len(c.ChannelMult), c.NumResBlocks, c.TransformerDepth, c.InChannels, c.ModelChannels, c.OutChannels, c.ContextDim)
	case c.InChannels <= 0 || c.OutChannels <= 0 || c.ModelChannels <= 0:
		return fmt.Errorf("unet: config: channels must be positive (in %d, out %d, model %d)", c.InChannels, c.OutChannels, c.ModelChannels)
	case len(c.ChannelMult) == 0:
		return fmt.Errorf("unet: config: empty channel_mult")
	case c.NumResBlocks <= 0 || c.TransformerDepth <= 0 || c.ContextDim <= 0:
		return fmt.Errorf("unet: config: num_res_blocks %d, transformer_depth %d, context_dim %d must be positive", c.NumResBlocks, c.TransformerDepth, c.ContextDim)
	case c.NormGroups <= 0:
		return fmt.Errorf("unet: config: norm groups %d must be positive", c.NormGroups)
	case !(c.NormEps > 0 && c.NormEps < 1): // NaN fails too
		return fmt.Errorf("unet: config: norm_eps %g must be positive and small (SD uses 1e-5)", c.NormEps)
	case c.NumHeadChannels <= 0 && c.NumHeads <= 0:
		return fmt.Errorf("unet: config: need num_heads or num_head_channels")
	}
	for _, m := range c.ChannelMult {
		ch := m * c.ModelChannels
		if m <= 0 || m > maxWidth || ch%c.NormGroups != 0 {
			return fmt.Errorf("unet: config: level width %d must be a positive multiple of %d groups", ch, c.NormGroups)
		}
		if h, d := c.heads(ch); h <= 0 || h*d != ch {
			return fmt.Errorf("unet: config: width %d does not split into heads (num_heads %d, num_head_channels %d)", ch, c.NumHeads, c.NumHeadChannels)
		}
	}
	return nil
}

// String prints the config on one line, for logs.
func (c Config) String() string {
	return fmt.Sprintf("unet{in %d out %d ch %d mult %v res %d attn %v heads %d/%d depth %d ctx %d linear %v}",
		c.InChannels, c.OutChannels, c.ModelChannels, c.ChannelMult, c.NumResBlocks, c.AttentionResolutions,
		c.NumHeads, c.NumHeadChannels, c.TransformerDepth, c.ContextDim, c.UseLinearProjection)
}

// Bounds far beyond any SD1.x/SD2 UNet, so that a corrupt or hostile file
// cannot make the loaders loop or allocate without end.
const (
	maxLevels    = 8
	maxResBlocks = 16
	maxDepth     = 64
	maxWidth     = 1 << 15
)

var blockKey = regexp.MustCompile(`^input_blocks\.(\d+)\.(\d+)\.`)

// DetectConfig infers the config from tensor shapes, keyed by names
// relative to Prefix (weights.Shapes(src, unet.Prefix)). Shapes reveal the
// channels, multipliers, ResBlocks per level, attention placement, context
// width, transformer depth and projection kind; the head count cannot be
// seen and is SD1.5's fixed choice (8 heads).
func DetectConfig(shapes map[string][]int) (Config, error) {
	c := SD15()
	get := func(name string, rank int) ([]int, error) {
		s, ok := shapes[name]
		if !ok {
			return nil, fmt.Errorf("unet: detect config: missing tensor %q", Prefix+name)
		}
		if len(s) != rank {
			return nil, fmt.Errorf("unet: detect config: tensor %q has shape %v, want rank %d", Prefix+name, s, rank)
		}
		return s, nil
	}
	in, err := get("input_blocks.0.0.weight", 4) // [model_channels, in, 3, 3]
	if err != nil {
		return Config{}, err
	}
	c.ModelChannels, c.InChannels = in[0], in[1]
	if c.ModelChannels <= 0 || c.InChannels <= 0 {
		return Config{}, fmt.Errorf("unet: detect config: tensor %q has empty shape %v", Prefix+"input_blocks.0.0.weight", in)
	}
	out, err := get("out.2.weight", 4) // [out, model_channels, 3, 3]
	if err != nil {
		return Config{}, err
	}
	c.OutChannels = out[0]

	// Group input_blocks.i by kind: ResBlock (+ optional transformer) or
	// Downsample; levels are separated by Downsamples.
	n := 0
	for name := range shapes {
		if m := blockKey.FindStringSubmatch(name); m != nil {
			i, _ := strconv.Atoi(m[1])
			n = max(n, i+1)
		}
	}
	if n > 1+maxLevels*(maxResBlocks+1) {
		return Config{}, fmt.Errorf("unet: detect config: %d input blocks is beyond any SD model: the file is corrupt", n)
	}
	if n < 2 {
		return Config{}, fmt.Errorf("unet: detect config: no input_blocks after input_blocks.0")
	}
	c.ChannelMult, c.AttentionResolutions = nil, nil
	level, res, ds := 0, 0, 1
	resPerLevel := []int{}
	for i := 1; i < n; i++ {
		p := fmt.Sprintf("input_blocks.%d.", i)
		if _, ok := shapes[p+"0.op.weight"]; ok {
			resPerLevel = append(resPerLevel, res)
			level, res, ds = level+1, 0, ds*2
			continue
		}
		w, err := get(p+"0.in_layers.2.weight", 4) // [out, in, 3, 3]
		if err != nil {
			return Config{}, err
		}
		if res == 0 {
			if w[0]%c.ModelChannels != 0 {
				return Config{}, fmt.Errorf("unet: detect config: level %d width %d is not a multiple of %d", level, w[0], c.ModelChannels)
			}
			c.ChannelMult = append(c.ChannelMult, w[0]/c.ModelChannels)
		}
		res++
		if pin, ok := shapes[p+"1.proj_in.weight"]; ok {
			if res == 1 {
				c.AttentionResolutions = append(c.AttentionResolutions, ds)
			}
			c.UseLinearProjection = len(pin) == 2
		}
	}
	resPerLevel = append(resPerLevel, res)
	c.NumResBlocks = resPerLevel[0]
	for l, r := range resPerLevel {
		if r != c.NumResBlocks {
			return Config{}, fmt.Errorf("unet: detect config: level %d has %d ResBlocks, level 0 has %d", l, r, c.NumResBlocks)
		}
	}
	slices.Sort(c.AttentionResolutions)
	slices.Reverse(c.AttentionResolutions) // CompVis order: 4, 2, 1

	k, err := get("middle_block.1.transformer_blocks.0.attn2.to_k.weight", 2) // [inner, context]
	if err != nil {
		return Config{}, err
	}
	c.ContextDim = k[1]
	c.TransformerDepth = 0
	for shapes[fmt.Sprintf("middle_block.1.transformer_blocks.%d.norm1.weight", c.TransformerDepth)] != nil {
		c.TransformerDepth++
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ConfigFromJSON reads a UNet config from JSON: CompVis unet_config params
// (model_channels, channel_mult, ...; also wrapped as {"config": {...}} or
// {"params": {...}}) or a diffusers UNet2DConditionModel config.json
// (block_out_channels, layers_per_block, ...). Fields the file does not
// give keep their SD1.5 values.
func ConfigFromJSON(data []byte) (Config, error) {
	f, err := blocks.ParseFields(data)
	if err != nil {
		return Config{}, fmt.Errorf("unet: config json: %w", err)
	}
	f = f.Unwrap()
	var c Config
	if f.Has("block_out_channels") {
		c, err = fromDiffusers(f)
	} else {
		c, err = fromCompVis(f)
	}
	if f.Err() != nil { // a field of the wrong type explains any later error
		err = f.Err()
	}
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		return Config{}, fmt.Errorf("unet: config json: %w", err)
	}
	return c, nil
}

func fromCompVis(f *blocks.Fields) (Config, error) {
	c := SD15()
	f.Int("in_channels", &c.InChannels)
	f.Int("out_channels", &c.OutChannels)
	f.Int("model_channels", &c.ModelChannels)
	f.Ints("channel_mult", &c.ChannelMult)
	f.Int("num_res_blocks", &c.NumResBlocks)
	f.Ints("attention_resolutions", &c.AttentionResolutions)
	f.Int("num_heads", &c.NumHeads)
	f.Int("num_head_channels", &c.NumHeadChannels)
	f.Int("transformer_depth", &c.TransformerDepth)
	f.Int("context_dim", &c.ContextDim)
	f.Bool("use_linear_in_transformer", &c.UseLinearProjection)
	st := true
	if f.Bool("use_spatial_transformer", &st) && !st {
		return Config{}, fmt.Errorf("use_spatial_transformer false is not supported")
	}
	return c, nil
}

func fromDiffusers(f *blocks.Fields) (Config, error) {
	c := SD15()
	var boc []int
	f.Ints("block_out_channels", &boc)
	if len(boc) == 0 {
		return Config{}, fmt.Errorf("empty block_out_channels")
	}
	c.ModelChannels = boc[0]
	c.ChannelMult = make([]int, len(boc))
	for i, b := range boc {
		if c.ModelChannels <= 0 || b%c.ModelChannels != 0 {
			return Config{}, fmt.Errorf("block_out_channels %v: not multiples of the first", boc)
		}
		c.ChannelMult[i] = b / c.ModelChannels
	}
	f.Int("in_channels", &c.InChannels)
	f.Int("out_channels", &c.OutChannels)
	f.Int("layers_per_block", &c.NumResBlocks)
	f.Int("cross_attention_dim", &c.ContextDim)
	f.Bool("use_linear_projection", &c.UseLinearProjection)
	f.Int("norm_num_groups", &c.NormGroups)
	f.Float32("norm_eps", &c.NormEps)
	f.Int("sample_size", &c.SampleSize)
	var down []string
	if f.Get("down_block_types", &down) {
		if len(down) != len(boc) {
			return Config{}, fmt.Errorf("%d down_block_types for %d block_out_channels", len(down), len(boc))
		}
		c.AttentionResolutions = nil
		for i := len(down) - 1; i >= 0; i-- {
			if strings.HasPrefix(down[i], "CrossAttn") {
				c.AttentionResolutions = append(c.AttentionResolutions, 1<<i)
			}
		}
	}
	if d, ok := f.IntOrInts("transformer_layers_per_block"); ok {
		if !allEqual(d) {
			return Config{}, fmt.Errorf("transformer_layers_per_block %v: per-level depths are not supported", d)
		}
		c.TransformerDepth = d[0]
	}
	// num_attention_heads, or else the legacy attention_head_dim, is the
	// number of heads (diffusers reads it so for SD1.x/SD2 UNets).
	heads, ok := f.IntOrInts("num_attention_heads")
	if !ok {
		heads, ok = f.IntOrInts("attention_head_dim")
	}
	if ok {
		switch {
		case len(heads) == 1 || allEqual(heads):
			c.NumHeads, c.NumHeadChannels = heads[0], -1
		case slices.ContainsFunc(heads, func(h int) bool { return h <= 0 }):
			return Config{}, fmt.Errorf("attention_head_dim %v: head counts must be positive", heads)
		case len(heads) == len(boc):
			// Per-level head counts with a common head width (SD2: 5, 10, 20, 20).
			c.NumHeadChannels = boc[0] / heads[0]
			for i := range heads {
				if heads[i]*c.NumHeadChannels != boc[i] {
					return Config{}, fmt.Errorf("attention_head_dim %v: no common head width for %v", heads, boc)
				}
			}
		default:
			return Config{}, fmt.Errorf("attention_head_dim %v does not match %d levels", heads, len(boc))
		}
	}
	return c, nil
}

func allEqual(v []int) bool {
	for _, x := range v {
		if x != v[0] {
			return false
		}
	}
	return len(v) > 0
}

// Detect infers the config of the UNet in src (see DetectConfig).
func Detect(src weights.Source) (Config, error) {
	return DetectConfig(weights.Shapes(src, Prefix))
}

// Tensors lists every tensor Load reads for cfg, full checkpoint key ->
// shape (the first accepted shape where a weight may take several), as
// blocks.Expected finds them: a checkpoint holding exactly these loads.
func Tensors(cfg Config) (map[string][]int, error) {
	return blocks.Expected(func(src weights.Source) error {
		_, err := Load(nil, src, cfg)
		return err
	})
}
