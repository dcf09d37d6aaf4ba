// Package vae is Stable Diffusion 1.x's KL autoencoder, after
// CompVis/stable-diffusion ldm/models/autoencoder.py AutoencoderKL with
// ldm/modules/diffusionmodules/model.py Encoder/Decoder and
// ldm/modules/distributions/distributions.py DiagonalGaussianDistribution
// (Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion
// Models", CVPR 2022). It also has the fast approximate latent-to-RGB
// preview and image conversions.
//
// Legend: B batch, C channels, H, W image size, h, w latent size
// (H/2^(levels-1)), E latent channels (embed_dim).
package vae

import (
	"context"
	"fmt"
	"math"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Model is a loaded autoencoder. It only reads its weights, so one Model
// may serve concurrent calls while Trace is not changed.
type Model struct {
	Config Config
	// Trace, when set, receives module outputs named as the golden
	// intermediates: "decode.post_quant_conv", "decode.decoder.up.1.block.0",
	// "encode.encoder.mid.attn_1", "encode.quant_conv", ...
	Trace blocks.Tracer

	e             *ops.Engine
	enc           *encoder
	dec           *decoder
	quantConv     blocks.Conv2D // quant_conv [2E, 2z, 1, 1]
	postQuantConv blocks.Conv2D // post_quant_conv [z, E, 1, 1]
	bytes         int64         // weight memory as held
	mapped        int64         // part of bytes mapped from the file
	pool          *blocks.WeightPool
}

type encoder struct {
	convIn  blocks.Conv2D    // encoder.conv_in
	down    []*level         // encoder.down.i
	mid     mid              // encoder.mid
	normOut blocks.GroupNorm // encoder.norm_out (then swish)
	convOut blocks.Conv2D    // encoder.conv_out
}

type decoder struct {
	convIn  blocks.Conv2D    // decoder.conv_in
	mid     mid              // decoder.mid
	up      []*level         // decoder.up.i, run from the last index down
	normOut blocks.GroupNorm // decoder.norm_out (then swish)
	convOut blocks.Conv2D    // decoder.conv_out
}

// Load builds the autoencoder of cfg from src, strictly: every tensor
// under Prefix must be used and have the expected shape; all problems are
// reported in one *blocks.LoadError. opts (at most one) say which layer
// weights are held as float16; the default keeps the checkpoint's dtype.
func Load(e *ops.Engine, src weights.Source, cfg Config, opts ...blocks.LoadOptions) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := blocks.NewLoader(src, "vae", Prefix, opts...)
	ch, n := cfg.Ch, len(cfg.ChMult)
	zOut := cfg.ZChannels
	if cfg.DoubleZ {
		zOut *= 2
	}
	m := &Model{
		Config:        cfg,
		e:             e,
		quantConv:     blocks.Conv1x1(l, "quant_conv", zOut, 2*cfg.EmbedDim),
		postQuantConv: blocks.Conv1x1(l, "post_quant_conv", cfg.EmbedDim, cfg.ZChannels),
	}

	// Encoder: level i maps ch*ch_mult[i-1] (ch at level 0) to ch*ch_mult[i].
	el := l.Sub("encoder")
	enc := &encoder{convIn: blocks.Conv3x3(el, "conv_in", cfg.InChannels, ch)}
	in := ch
	for i, mult := range cfg.ChMult {
		lv := loadLevel(el.Sub(fmt.Sprintf("down.%d", i)), cfg, in, ch*mult, cfg.NumResBlocks, cfg.hasAttention(i))
		in = ch * mult
		if i != n-1 {
			lv.resample = loadDownsample(el.Sub(fmt.Sprintf("down.%d.downsample", i)), in)
		}
		enc.down = append(enc.down, lv)
	}
	enc.mid = loadMid(el.Sub("mid"), cfg, in)
	enc.normOut = blocks.LoadGroupNorm(el, "norm_out", in, cfg.NormGroups, normEps)
	enc.convOut = blocks.Conv3x3(el, "conv_out", in, zOut)
	m.enc = enc

	// Decoder: from the widest level down; up.i has num_res_blocks+1 blocks.
	dl := l.Sub("decoder")
	in = ch * cfg.ChMult[n-1]
	dec := &decoder{convIn: blocks.Conv3x3(dl, "conv_in", cfg.ZChannels, in)}
	dec.mid = loadMid(dl.Sub("mid"), cfg, in)
	dec.up = make([]*level, n)
	for i := n - 1; i >= 0; i-- {
		out := ch * cfg.ChMult[i]
		lv := loadLevel(dl.Sub(fmt.Sprintf("up.%d", i)), cfg, in, out, cfg.NumResBlocks+1, cfg.hasAttention(i))
		in = out
		if i != 0 {
			lv.resample, lv.up = loadUpsample(dl.Sub(fmt.Sprintf("up.%d.upsample", i)), in), true
		}
		dec.up[i] = lv
	}
	dec.normOut = blocks.LoadGroupNorm(dl, "norm_out", in, cfg.NormGroups, normEps)
	dec.convOut = blocks.Conv3x3(dl, "conv_out", in, cfg.OutChannels)
	m.dec = dec
	if err := l.Finish(); err != nil {
		return nil, err
	}
	m.bytes, m.pool = l.WeightBytes(), l.Pool()
	m.mapped = l.MappedBytes()
	return m, nil
}

// WeightBytes is the memory the model's weights take as held (4 bytes a
// float32 value, 2 a float16 one), not counting the pooled conversion
// buffers of half weights.
func (m *Model) WeightBytes() int64 { return m.bytes }

// MappedBytes is the part of WeightBytes that is views of a mapped
// checkpoint file rather than Go heap.
func (m *Model) MappedBytes() int64 { return m.mapped }

// Decode maps latents z [B, E, h, w] (the autoencoder's own scale: divide
// the diffusion latents by ScaleFactor first, or use DecodeLatents) to an
// image [B, OutChannels, H, W] in about [-1, 1]. ctx is checked between
// levels.
func (m *Model) Decode(ctx context.Context, z tensor.Tensor) (tensor.Tensor, error) {
	c := m.Config
	if !z.Valid() || z.Rank() != 4 || z.Dim(1) != c.EmbedDim {
		return tensor.Tensor{}, fmt.Errorf("vae: decode: z %v, want [B, %d, h, w]", z, c.EmbedDim)
	}
	f, arena := m.flow()
	tr, d := m.Trace, m.dec
	h := f.Conv(m.postQuantConv, z) // [B, z, h, w]
	tr.Trace("decode.post_quant_conv", h)
	h = scoped(f, h, func(f *blocks.Flow, h tensor.Tensor) tensor.Tensor { return f.Conv(d.convIn, h) }) // [B, C, h, w]
	tr.Trace("decode.decoder.conv_in", h)
	h = d.mid.forward(f, tr, "decode.decoder.", h) // [B, C, h, w]
	for i := len(d.up) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return tensor.Tensor{}, err
		}
		h = d.up[i].forward(f, tr, "decode.", h) // [B, C_i, H_i, W_i]
		if err := f.Err(); err != nil {
			return tensor.Tensor{}, fmt.Errorf("vae: decode: %s: %w", d.up[i].name, err)
		}
		arena.Clear() // the next level's maps are larger: the idle ones are no use
	}
	h = scoped(f, h, func(f *blocks.Flow, h tensor.Tensor) tensor.Tensor {
		return normSiLU(f, tr, d.normOut, "decode.decoder.norm_out", h) // [B, C, H, W]
	})
	h = scoped(f, h, func(f *blocks.Flow, h tensor.Tensor) tensor.Tensor { return f.Conv(d.convOut, h) }) // [B, out, H, W]
	tr.Trace("decode.decoder.conv_out", h)
	if err := f.Err(); err != nil {
		return tensor.Tensor{}, fmt.Errorf("vae: decode: %w", err)
	}
	f.Done(h)
	return h, nil
}

// flow starts a pass whose results are recycled (blocks.Arena) within the
// pass, unless a tracer may keep them (arena is then nil, which Clear
// accepts): the arena lives for this pass only, so nothing stays
// allocated between passes.
func (m *Model) flow() (f *blocks.Flow, arena *blocks.Arena) {
	if m.Trace != nil {
		return blocks.NewFlow(m.e), nil
	}
	arena = new(blocks.Arena)
	return blocks.NewArenaFlow(m.e, arena), arena
}

// normSiLU is norm then swish: one fused operator, or two when tracing
// (name receives the norm's output).
func normSiLU(f *blocks.Flow, tr blocks.Tracer, norm blocks.GroupNorm, name string, x tensor.Tensor) tensor.Tensor {
	if tr == nil {
		return f.GroupNormSiLU(norm, x)
	}
	x = f.GroupNorm(norm, x)
	tr(name, x)
	return f.SiLU(x)
}

// DecodeLatents decodes diffusion-space latents [B, E, h, w]: Decode of
// latents / ScaleFactor (CompVis decode_first_stage).
func (m *Model) DecodeLatents(ctx context.Context, latents tensor.Tensor) (tensor.Tensor, error) {
	z, err := m.e.Scale(latents, 1/m.Config.ScaleFactor) // [B, E, h, w]
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("vae: decode latents: %w", err)
	}
	return m.Decode(ctx, z)
}

// Posterior is the encoder's diagonal Gaussian over latents
// (DiagonalGaussianDistribution). Mean, LogVar and Std are constants: the
// clamp and exp are computed on values, for encoding training images.
type Posterior struct {
	Moments tensor.Tensor // [B, 2E, h, w]: quant_conv output, mean then logvar channels
	Mean    tensor.Tensor // [B, E, h, w]
	LogVar  tensor.Tensor // [B, E, h, w], clamped to [-30, 20]
	Std     tensor.Tensor // [B, E, h, w] = exp(LogVar/2)
}

// Sample returns Mean + Std*noise [B, E, h, w] (noise: standard normal
// values, one per latent element, e.g. torch.randn of the mean's shape).
func (p Posterior) Sample(noise []float32) (tensor.Tensor, error) {
	mean, std := p.Mean.Data(), p.Std.Data()
	if len(noise) != len(mean) {
		return tensor.Tensor{}, fmt.Errorf("vae: sample: %d noise values for %v", len(noise), p.Mean)
	}
	out := make([]float32, len(mean))
	for i := range out {
		out[i] = mean[i] + std[i]*noise[i]
	}
	return tensor.New(out, p.Mean.Shape()...)
}

// Encode maps an image x [B, InChannels, H, W] in [-1, 1] to its
// posterior; H and W must be multiples of 2^(levels-1). ctx is checked
// between levels.
func (m *Model) Encode(ctx context.Context, x tensor.Tensor) (Posterior, error) {
	c := m.Config
	if !x.Valid() || x.Rank() != 4 || x.Dim(1) != c.InChannels {
		return Posterior{}, fmt.Errorf("vae: encode: x %v, want [B, %d, H, W]", x, c.InChannels)
	}
	if f := 1 << (len(c.ChMult) - 1); x.Dim(2)%f != 0 || x.Dim(3)%f != 0 {
		return Posterior{}, fmt.Errorf("vae: encode: x %v: H and W must be multiples of %d", x, f)
	}
	f, arena := m.flow()
	tr, en := m.Trace, m.enc
	h := f.Conv(en.convIn, x) // [B, C, H, W]
	tr.Trace("encode.encoder.conv_in", h)
	for _, lv := range en.down {
		if err := ctx.Err(); err != nil {
			return Posterior{}, err
		}
		h = lv.forward(f, tr, "encode.", h) // [B, C_i, H_i, W_i]
		if err := f.Err(); err != nil {
			return Posterior{}, fmt.Errorf("vae: encode: %s: %w", lv.name, err)
		}
		arena.Clear() // the next level's maps are smaller: the idle ones are no use
	}
	h = en.mid.forward(f, tr, "encode.encoder.", h)               // [B, C, h, w]
	h = normSiLU(f, tr, en.normOut, "encode.encoder.norm_out", h) // [B, C, h, w]
	h = f.Conv(en.convOut, h)                                     // [B, 2z, h, w]
	tr.Trace("encode.encoder.conv_out", h)
	moments := f.Conv(m.quantConv, h) // [B, 2E, h, w]
	tr.Trace("encode.quant_conv", moments)
	if err := f.Err(); err != nil {
		return Posterior{}, fmt.Errorf("vae: encode: %w", err)
	}
	p, err := posterior(moments) // copies out of moments
	f.Done()
	return p, err
}

// posterior splits moments [B, 2E, h, w] into mean and clamped logvar.
func posterior(moments tensor.Tensor) (Posterior, error) {
	b, e2, h, w := moments.Dim(0), moments.Dim(1), moments.Dim(2), moments.Dim(3)
	e, hw := e2/2, h*w
	src := moments.Data()
	mean := make([]float32, b*e*hw)
	logvar := make([]float32, b*e*hw)
	std := make([]float32, b*e*hw)
	for i := range b {
		copy(mean[i*e*hw:(i+1)*e*hw], src[i*e2*hw:])
		copy(logvar[i*e*hw:(i+1)*e*hw], src[i*e2*hw+e*hw:])
	}
	for i, lv := range logvar {
		lv = min(max(lv, logVarMin), logVarMax)
		logvar[i] = lv
		std[i] = float32(math.Exp(float64(lv) / 2))
	}
	p := Posterior{Moments: moments}
	var err1, err2, err3 error
	p.Mean, err1 = tensor.New(mean, b, e, h, w)
	p.LogVar, err2 = tensor.New(logvar, b, e, h, w)
	p.Std, err3 = tensor.New(std, b, e, h, w)
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return Posterior{}, fmt.Errorf("vae: encode: %w", err)
		}
	}
	return p, nil
}

// Latents returns diffusion-space latents ScaleFactor * (Mean + Std*noise)
// of a posterior (CompVis get_first_stage_encoding).
func (m *Model) Latents(p Posterior, noise []float32) (tensor.Tensor, error) {
	s, err := p.Sample(noise)
	if err != nil {
		return tensor.Tensor{}, err
	}
	return m.e.Scale(s, m.Config.ScaleFactor)
}
