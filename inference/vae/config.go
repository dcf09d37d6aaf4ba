package vae

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Prefix is the checkpoint key prefix of the autoencoder's tensors.
const Prefix = "first_stage_model."

// Config holds the KL autoencoder's hyper-parameters, named after the
// CompVis first_stage_config params (embed_dim + ddconfig).
type Config struct {
	InChannels   int   // in_channels: image channels into the encoder
	OutChannels  int   // out_ch: image channels out of the decoder
	Ch           int   // ch: width of level 0
	ChMult       []int // ch_mult: width of level i = Ch*ChMult[i]
	NumResBlocks int   // num_res_blocks: ResnetBlocks per encoder level (decoder: one more)
	// AttnLevels lists the levels that get an AttnBlock after each
	// ResnetBlock (CompVis attn_resolutions, converted with resolution:
	// level i has size resolution>>i); SD1.5: none. The middle block always
	// has one.
	AttnLevels  []int
	ZChannels   int     // z_channels: latent channels of the encoder/decoder
	EmbedDim    int     // embed_dim: latent channels after quant_conv
	DoubleZ     bool    // double_z: the encoder outputs mean and logvar
	ScaleFactor float32 // scale_factor: the diffusion model works on ScaleFactor*sample
	NormGroups  int     // GroupNorm groups (32)
}

// Fixed by the CompVis code (model.py Normalize).
const normEps = 1e-6

// Posterior log-variance clamp (distributions.py DiagonalGaussianDistribution).
const (
	logVarMin = -30
	logVarMax = 20
)

// SD15 is SD1.5's autoencoder: first_stage_config of
// configs/stable-diffusion/v1-inference.yaml (AutoencoderKL, embed_dim 4,
// ddconfig ch 128, ch_mult [1,2,4,4], num_res_blocks 2, attn_resolutions
// [], z_channels 4, resolution 256) and the model's scale_factor 0.18215.
func SD15() Config {
	return Config{
		InChannels:   3,
		OutChannels:  3,
		Ch:           128,
		ChMult:       []int{1, 2, 4, 4},
		NumResBlocks: 2,
		AttnLevels:   []int{},
		ZChannels:    4,
		EmbedDim:     4,
		DoubleZ:      true,
		ScaleFactor:  0.18215,
		NormGroups:   32,
	}
}

// hasAttention reports whether level i has AttnBlocks.
func (c Config) hasAttention(level int) bool { return slices.Contains(c.AttnLevels, level) }

// Validate checks that the sizes fit together.
func (c Config) Validate() error {
	switch {
	case len(c.ChMult) > maxLevels || c.NumResBlocks > maxResBlocks || c.Ch > maxWidth ||
		c.InChannels > maxWidth || c.OutChannels > maxWidth || c.ZChannels > maxWidth || c.EmbedDim > maxWidth:
		return fmt.Errorf("vae: config: sizes beyond any SD autoencoder (%v): the file is not an SD VAE or is corrupt", c)
	case c.InChannels <= 0 || c.OutChannels <= 0 || c.Ch <= 0 || c.NumResBlocks <= 0:
		return fmt.Errorf("vae: config: sizes must be positive: %v", c)
	case len(c.ChMult) == 0:
		return fmt.Errorf("vae: config: empty ch_mult")
	case c.ZChannels <= 0 || c.EmbedDim <= 0:
		return fmt.Errorf("vae: config: z_channels %d and embed_dim %d must be positive", c.ZChannels, c.EmbedDim)
	case !c.DoubleZ:
		return fmt.Errorf("vae: config: double_z false is not supported (KL autoencoder)")
	case c.ScaleFactor == 0:
		return fmt.Errorf("vae: config: scale_factor must not be 0")
	case c.NormGroups <= 0 || c.Ch%c.NormGroups != 0:
		return fmt.Errorf("vae: config: width %d must be a multiple of %d groups", c.Ch, c.NormGroups)
	}
	for _, m := range c.ChMult {
		if m <= 0 || m > maxWidth || (m*c.Ch)%c.NormGroups != 0 {
			return fmt.Errorf("vae: config: level width %d must be a positive multiple of %d groups", m*c.Ch, c.NormGroups)
		}
	}
	return nil
}

// String prints the config on one line, for logs.
func (c Config) String() string {
	return fmt.Sprintf("vae{in %d out %d ch %d mult %v res %d attn levels %v z %d embed %d scale %g}",
		c.InChannels, c.OutChannels, c.Ch, c.ChMult, c.NumResBlocks, c.AttnLevels,
		c.ZChannels, c.EmbedDim, c.ScaleFactor)
}

var downKey = regexp.MustCompile(`^encoder\.down\.(\d+)\.block\.(\d+)\.`)

// Bounds far beyond any SD autoencoder, so that a corrupt or hostile file
// cannot make the loaders loop or allocate without end.
const (
	maxLevels    = 8
	maxResBlocks = 16
	maxWidth     = 1 << 15
)

// DetectConfig infers the config from tensor shapes keyed by names relative
// to Prefix (weights.Shapes(src, vae.Prefix)): channels, multipliers,
// blocks per level, latent widths and which levels have attention. The
// scale factor is SD1.5's 0.18215.
func DetectConfig(shapes map[string][]int) (Config, error) {
	c := SD15()
	get := func(name string) ([]int, error) {
		s, ok := shapes[name]
		if !ok || len(s) != 4 {
			return nil, fmt.Errorf("vae: detect config: tensor %q missing or not 4-D (%v)", Prefix+name, s)
		}
		return s, nil
	}
	in, err := get("encoder.conv_in.weight") // [ch, in, 3, 3]
	if err != nil {
		return Config{}, err
	}
	out, err := get("decoder.conv_out.weight") // [out, ch, 3, 3]
	if err != nil {
		return Config{}, err
	}
	zin, err := get("decoder.conv_in.weight") // [C, z, 3, 3]
	if err != nil {
		return Config{}, err
	}
	pq, err := get("post_quant_conv.weight") // [z, embed, 1, 1]
	if err != nil {
		return Config{}, err
	}
	eo, err := get("encoder.conv_out.weight") // [2z, C, 3, 3]
	if err != nil {
		return Config{}, err
	}
	c.Ch, c.InChannels, c.OutChannels = in[0], in[1], out[0]
	c.ZChannels, c.EmbedDim = zin[1], pq[1]
	c.DoubleZ = eo[0] == 2*c.ZChannels
	levels, blocksPerLevel := 0, 0
	for name := range shapes {
		if m := downKey.FindStringSubmatch(name); m != nil {
			i, _ := strconv.Atoi(m[1])
			j, _ := strconv.Atoi(m[2])
			levels, blocksPerLevel = max(levels, i+1), max(blocksPerLevel, j+1)
		}
	}
	switch {
	case levels == 0:
		return Config{}, fmt.Errorf("vae: detect config: no encoder.down.* tensors")
	case levels > maxLevels || blocksPerLevel > maxResBlocks:
		return Config{}, fmt.Errorf("vae: detect config: %d levels of %d blocks is beyond any SD autoencoder: the file is corrupt", levels, blocksPerLevel)
	case c.Ch <= 0:
		return Config{}, fmt.Errorf("vae: detect config: tensor %q has empty shape %v", Prefix+"encoder.conv_in.weight", in)
	}
	c.NumResBlocks = blocksPerLevel
	c.ChMult = make([]int, levels)
	c.AttnLevels = []int{}
	for i := range levels {
		w, err := get(fmt.Sprintf("encoder.down.%d.block.0.conv2.weight", i)) // [Ch*mult, Ch*mult, 3, 3]
		if err != nil {
			return Config{}, err
		}
		if w[0]%c.Ch != 0 {
			return Config{}, fmt.Errorf("vae: detect config: level %d width %d is not a multiple of %d", i, w[0], c.Ch)
		}
		c.ChMult[i] = w[0] / c.Ch
		if _, ok := shapes[fmt.Sprintf("encoder.down.%d.attn.0.q.weight", i)]; ok {
			c.AttnLevels = append(c.AttnLevels, i)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ConfigFromJSON reads a config from JSON: CompVis first_stage_config
// params ({"embed_dim", "ddconfig": {...}}, also wrapped as {"config":
// {...}} or {"params": {...}}, with scale_factor at any level) or a
// diffusers AutoencoderKL config.json (block_out_channels,
// layers_per_block, latent_channels, scaling_factor). Fields the file does
// not give keep their SD1.5 values.
func ConfigFromJSON(data []byte) (Config, error) {
	f, err := blocks.ParseFields(data)
	if err != nil {
		return Config{}, fmt.Errorf("vae: config json: %w", err)
	}
	c := SD15()
	// scale_factor may sit beside the wrapped params (golden files, the
	// LatentDiffusion params of the YAML).
	for g := f; g != nil; g = unwrapOnce(g) {
		g.Float32("scale_factor", &c.ScaleFactor)
	}
	f = f.Unwrap()
	if f.Has("block_out_channels") {
		err = fromDiffusers(f, &c)
	} else {
		err = fromCompVis(f, &c)
	}
	if f.Err() != nil { // a field of the wrong type explains any later error
		err = f.Err()
	}
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		return Config{}, fmt.Errorf("vae: config json: %w", err)
	}
	return c, nil
}

func unwrapOnce(f *blocks.Fields) *blocks.Fields {
	for _, k := range []string{"config", "params"} {
		if sub := f.Object(k); sub != nil {
			return sub
		}
	}
	return nil
}

func fromCompVis(f *blocks.Fields, c *Config) error {
	f.Int("embed_dim", &c.EmbedDim)
	dd := f.Object("ddconfig")
	if dd == nil {
		dd = f
	}
	var attnRes []int
	resolution := 256
	dd.Int("in_channels", &c.InChannels)
	dd.Int("out_ch", &c.OutChannels)
	dd.Int("ch", &c.Ch)
	dd.Ints("ch_mult", &c.ChMult)
	dd.Int("num_res_blocks", &c.NumResBlocks)
	dd.Ints("attn_resolutions", &attnRes)
	dd.Int("resolution", &resolution)
	dd.Int("z_channels", &c.ZChannels)
	dd.Bool("double_z", &c.DoubleZ)
	c.AttnLevels = []int{}
	for i := range c.ChMult {
		if slices.Contains(attnRes, resolution>>i) {
			c.AttnLevels = append(c.AttnLevels, i)
		}
	}
	return dd.Err()
}

func fromDiffusers(f *blocks.Fields, c *Config) error {
	var boc []int
	f.Ints("block_out_channels", &boc)
	if len(boc) == 0 || boc[0] <= 0 {
		return fmt.Errorf("bad block_out_channels %v", boc)
	}
	c.Ch = boc[0]
	c.ChMult = make([]int, len(boc))
	for i, b := range boc {
		if b%c.Ch != 0 {
			return fmt.Errorf("block_out_channels %v: not multiples of the first", boc)
		}
		c.ChMult[i] = b / c.Ch
	}
	f.Int("in_channels", &c.InChannels)
	f.Int("out_channels", &c.OutChannels)
	f.Int("layers_per_block", &c.NumResBlocks)
	if f.Int("latent_channels", &c.ZChannels) {
		c.EmbedDim = c.ZChannels
	}
	f.Int("norm_num_groups", &c.NormGroups)
	f.Float32("scaling_factor", &c.ScaleFactor)
	var down []string
	if f.Get("down_block_types", &down) {
		c.AttnLevels = []int{}
		for i, d := range down {
			if d == "AttnDownEncoderBlock2D" {
				c.AttnLevels = append(c.AttnLevels, i)
			}
		}
	}
	return nil
}

// Detect infers the config of the autoencoder in src (see DetectConfig).
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
