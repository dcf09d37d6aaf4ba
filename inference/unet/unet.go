// Package unet is the Stable Diffusion 1.x noise-prediction UNet, after
// CompVis/stable-diffusion ldm/modules/diffusionmodules/openaimodel.py
// UNetModel (legacy=False, use_spatial_transformer=True) and
// ldm/modules/attention.py SpatialTransformer (Rombach et al., "High-
// Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022).
//
// Modules are named by their checkpoint keys under Prefix
// ("input_blocks.4.0" is a ResBlock, "input_blocks.4.1" its
// SpatialTransformer). Legend: B batch, C channels, H, W latent size,
// N = H*W pixel tokens, T context tokens, Dc context width, E time
// embedding width (4*model_channels).
package unet

import (
	"context"
	"fmt"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// KV names the cross-attention projection a KVEditor is asked for.
type KV int

const (
	Key   KV = iota // attn2.to_k
	Value           // attn2.to_v
)

// String is the projection's checkpoint name.
func (k KV) String() string {
	if k == Key {
		return "to_k"
	}
	return "to_v"
}

// KVEditor computes the cross-attention key/value projections in place of
// the plain Linear layers (Perfusion's gated rank-one edit is one; see
// concepts/). Only attn2 (cross-attention) goes through it; attn1 never.
type KVEditor interface {
	// Project returns the kv projection of context [B, T, Dc] for the
	// cross-attention layer named layer (its checkpoint path under Prefix,
	// e.g. "input_blocks.1.1.transformer_blocks.0.attn2"); weight is that
	// layer's to_k or to_v weight [inner, Dc]. The plain projection is
	// Engine.Linear(context, weight, zero). The result must be [B, T, inner].
	Project(layer string, kv KV, context, weight tensor.Tensor) (tensor.Tensor, error)
}

// CrossAttention describes one cross-attention layer, for editors. ToK
// and ToV are float32 tensors whatever the load options.
type CrossAttention struct {
	Name string        // checkpoint path: "input_blocks.1.1.transformer_blocks.0.attn2"
	ToK  tensor.Tensor // [inner, Dc]
	ToV  tensor.Tensor // [inner, Dc]
}

// Model is a loaded UNet. Forward reads the model only, so one Model may
// serve concurrent calls (each with its own Call) as long as Trace is not
// changed meanwhile.
type Model struct {
	Config Config
	// Trace, when set, receives each module's output under its checkpoint
	// path, plus "t_emb" (sinusoidal embedding) and "time_embed".
	Trace blocks.Tracer

	e          *ops.Engine
	timeEmbed0 blocks.Linear    // time_embed.0 (time_embed.1 is SiLU)
	timeEmbed2 blocks.Linear    // time_embed.2
	input      []*sequence      // input_blocks.i
	middle     *sequence        // middle_block: ResBlock, SpatialTransformer, ResBlock
	output     []*sequence      // output_blocks.i
	outNorm    blocks.GroupNorm // out.0 (out.1 is SiLU)
	outConv    blocks.Conv2D    // out.2
	cross      []*attention     // every attn2, in forward order
	bytes      int64            // weight memory as held
	mapped     int64            // part of bytes mapped from the file
	pool       *blocks.WeightPool
	arena      *blocks.Arena // recycles activations across forward passes
}

// Load builds the UNet of cfg from src, strictly: every tensor under Prefix
// must be used and have the expected shape; all problems are reported in
// one *blocks.LoadError. opts (at most one) say which layer weights are
// held as float16; the default keeps the checkpoint's dtype. The
// cross-attention to_k/to_v weights that editors are given (see
// CrossAttentions) always stay float32.
func Load(e *ops.Engine, src weights.Source, cfg Config, opts ...blocks.LoadOptions) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := blocks.NewLoader(src, "unet", Prefix, opts...)
	mc, ed := cfg.ModelChannels, cfg.TimeEmbedDim()
	m := &Model{
		Config:     cfg,
		e:          e,
		timeEmbed0: blocks.LoadLinear(l, "time_embed.0", mc, ed, true),
		timeEmbed2: blocks.LoadLinear(l, "time_embed.2", ed, ed, true),
	}
	// Mirrors UNetModel.__init__: chans records the width of every input
	// block output, consumed in reverse by the output blocks' skips.
	in0, sl := newSequence(l, "input_blocks.0")
	in0.add(&convIn{conv: blocks.Conv3x3(sl, "0", cfg.InChannels, mc)})
	m.input = append(m.input, in0)
	chans := []int{mc}
	ch, ds := mc, 1
	for level, mult := range cfg.ChannelMult {
		for range cfg.NumResBlocks {
			s, sl := newSequence(l, fmt.Sprintf("input_blocks.%d", len(m.input)))
			s.add(loadResBlock(s.next(sl), cfg, ch, mult*mc))
			ch = mult * mc
			if cfg.hasAttention(ds) {
				s.add(m.loadTransformer(s.next(sl), ch))
			}
			m.input = append(m.input, s)
			chans = append(chans, ch)
		}
		if level != len(cfg.ChannelMult)-1 {
			s, sl := newSequence(l, fmt.Sprintf("input_blocks.%d", len(m.input)))
			s.add(loadDownsample(s.next(sl), ch))
			m.input = append(m.input, s)
			chans = append(chans, ch)
			ds *= 2
		}
	}
	mid, ml := newSequence(l, "middle_block")
	mid.add(loadResBlock(mid.next(ml), cfg, ch, ch))
	mid.add(m.loadTransformer(mid.next(ml), ch))
	mid.add(loadResBlock(mid.next(ml), cfg, ch, ch))
	m.middle = mid
	for level := len(cfg.ChannelMult) - 1; level >= 0; level-- {
		out := cfg.ChannelMult[level] * mc
		for i := range cfg.NumResBlocks + 1 {
			skip := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			s, sl := newSequence(l, fmt.Sprintf("output_blocks.%d", len(m.output)))
			s.add(loadResBlock(s.next(sl), cfg, ch+skip, out))
			ch = out
			if cfg.hasAttention(ds) {
				s.add(m.loadTransformer(s.next(sl), ch))
			}
			if level > 0 && i == cfg.NumResBlocks {
				s.add(loadUpsample(s.next(sl), ch))
				ds /= 2
			}
			m.output = append(m.output, s)
		}
	}
	m.outNorm = blocks.LoadGroupNorm(l, "out.0", mc, cfg.NormGroups, cfg.NormEps)
	m.outConv = blocks.Conv3x3(l, "out.2", mc, cfg.OutChannels)
	if err := l.Finish(); err != nil {
		return nil, err
	}
	m.bytes, m.pool, m.arena = l.WeightBytes(), l.Pool(), new(blocks.Arena)
	m.mapped = l.MappedBytes()
	return m, nil
}

// ReleaseActivations drops the activation buffers kept idle between
// forward passes (see blocks.Arena): for a caller that is done sampling
// for now and runs something else (the VAE decoder), or keeps the model
// loaded while idle. The next pass allocates them again.
func (m *Model) ReleaseActivations() {
	if m.arena != nil {
		m.arena.Clear()
	}
}

// SizeMultiple is the number latent sides must be multiples of: 1, any
// size works (see Forward).
func (m *Model) SizeMultiple() int { return 1 }

// WeightBytes is the memory the model's weights take as held (4 bytes a
// float32 value, 2 a float16 one), not counting the pooled conversion
// buffers of half weights (one layer's worth per running forward pass).
func (m *Model) WeightBytes() int64 { return m.bytes }

// MappedBytes is the part of WeightBytes that is views of a mapped
// checkpoint file rather than Go heap.
func (m *Model) MappedBytes() int64 { return m.mapped }

// CrossAttentions lists the cross-attention layers in forward order, with
// their to_k/to_v weights.
func (m *Model) CrossAttentions() []CrossAttention {
	out := make([]CrossAttention, len(m.cross))
	for i, a := range m.cross {
		out[i] = CrossAttention{Name: a.name, ToK: a.toK.Weight, ToV: a.toV.Weight}
	}
	return out
}

// Call holds what one Forward call adds to the model without changing it,
// so that concurrent calls on one Model (a preview, a training step, a
// render) never see each other's edits.
type Call struct {
	// Editor, when set, computes every attn2 to_k/to_v projection of this
	// call (nil: the plain Linear).
	Editor KVEditor
	// Trace, when set, receives this call's module outputs as Model.Trace
	// does (and replaces Model.Trace for this call).
	Trace blocks.Tracer
	// Recompute, when set, makes every module of the input, middle and
	// output blocks a checkpoint of it (activation recomputation for
	// training: the backward pass holds one module's graph, and its
	// weights in float32, at a time and recomputes it);
	// check its Err after ag.Backward. The cross-attention K/V projections
	// (and so the Editor) are then computed once, up front, outside the
	// checkpoints. nil keeps every block's graph.
	Recompute *blocks.Recompute
}

// run carries what every block of one forward pass needs.
type run struct {
	f       *blocks.Flow
	emb     tensor.Tensor // SiLU(time embedding) [B, E]: emb_layers.0 of every ResBlock
	context tensor.Tensor // [B, T, Dc]
	editor  KVEditor
	trace   blocks.Tracer
	upTo    [2]int // size of the skip the next output block meets: an Upsample's target
	rc      *blocks.Recompute
	kv      map[*attention][2]tensor.Tensor // precomputed attn2 K, V [B, T, inner] (with rc)
	pool    *blocks.WeightPool              // the model's, whose weights a recomputation holds (with rc)
}

// Forward predicts the noise eps [B, OutChannels, H, W] of latents x
// [B, InChannels, H, W] at timesteps t (one per batch element) under the
// text conditioning cond [B, T, Dc]. H and W may be any size (see
// SizeMultiple): as diffusers does, each Downsample halves a side rounding
// up, and each Upsample resizes to the exact size of the skip connection it
// meets. ctx is checked between blocks. call (at most one) adds a K/V
// editor for this call only.
func (m *Model) Forward(ctx context.Context, x tensor.Tensor, t []float32, cond tensor.Tensor, call ...Call) (tensor.Tensor, error) {
	if err := m.checkInputs(x, t, cond); err != nil {
		return tensor.Tensor{}, err
	}
	if len(call) > 1 {
		return tensor.Tensor{}, fmt.Errorf("unet: %d Calls, want at most one", len(call))
	}
	arena := m.arena
	if m.Trace != nil {
		arena = nil // a tracer may keep intermediate results
	}
	f := blocks.NewArenaFlow(m.e, arena) // results recycled at scope ends, until a gradient graph needs them
	r := &run{f: f, context: cond, trace: m.Trace, pool: m.pool}
	if len(call) == 1 {
		r.editor = call[0].Editor
		if call[0].Trace != nil {
			r.trace = call[0].Trace
		}
		r.rc = call[0].Recompute
	}
	b, mc := x.Dim(0), m.Config.ModelChannels

	tEmb := f.Do(tensor.New(ops.TimestepEmbedding(t, mc), b, mc)) // [B, C]
	r.trace.Trace("t_emb", tEmb)
	emb := f.Linear(m.timeEmbed0, tEmb) // [B, E]
	emb = f.SiLU(emb)                   // time_embed.1
	emb = f.Linear(m.timeEmbed2, emb)   // [B, E]
	r.trace.Trace("time_embed", emb)
	r.emb = f.SiLU(emb) // [B, E]
	if err := f.Err(); err != nil {
		return tensor.Tensor{}, fmt.Errorf("unet: time_embed: %w", err)
	}
	if r.rc != nil {
		if err := m.projectAll(r); err != nil {
			return tensor.Tensor{}, err
		}
	}

	h := x // [B, Cin, H, W]
	skips := make([]tensor.Tensor, 0, len(m.input))
	for _, s := range m.input {
		if err := ctx.Err(); err != nil {
			return tensor.Tensor{}, err
		}
		var err error
		mark := f.Mark()
		if h, err = s.run(r, h, tensor.Tensor{}); err != nil { // [B, C_i, H_i, W_i]
			return tensor.Tensor{}, err
		}
		f.Release(mark, h)
		skips = append(skips, h)
	}
	if err := ctx.Err(); err != nil {
		return tensor.Tensor{}, err
	}
	mark := f.Mark()
	h, err := m.middle.run(r, h, tensor.Tensor{}) // [B, C, H/8, W/8] (SD1.5)
	if err != nil {
		return tensor.Tensor{}, err
	}
	f.Release(mark, h)
	for _, s := range m.output {
		if err := ctx.Err(); err != nil {
			return tensor.Tensor{}, err
		}
		skip := skips[len(skips)-1]
		skips = skips[:len(skips)-1]
		if len(skips) > 0 { // an Upsample ending this block resizes to the next skip
			r.upTo = [2]int{skips[len(skips)-1].Dim(2), skips[len(skips)-1].Dim(3)}
		}
		mark := f.Mark()
		if h, err = s.run(r, h, skip); err != nil { // concat(h, skip) first
			return tensor.Tensor{}, err
		}
		f.Release(mark, h) // the concatenation too
	}
	if r.trace != nil {
		h = f.GroupNorm(m.outNorm, h) // [B, C, H, W]
		r.trace("out.0", h)
		h = f.SiLU(h) // out.1
	} else {
		h = f.GroupNormSiLU(m.outNorm, h) // out.0, out.1: [B, C, H, W]
	}
	h = f.Conv(m.outConv, h) // [B, Cout, H, W]
	if err := f.Err(); err != nil {
		return tensor.Tensor{}, fmt.Errorf("unet: out: %w", err)
	}
	f.Done(h)
	return h, nil
}

func (m *Model) checkInputs(x tensor.Tensor, t []float32, cond tensor.Tensor) error {
	c := m.Config
	if !x.Valid() || x.Rank() != 4 || x.Dim(1) != c.InChannels {
		return fmt.Errorf("unet: x %v, want [B, %d, H, W]", x, c.InChannels)
	}
	if len(t) != x.Dim(0) {
		return fmt.Errorf("unet: %d timesteps for batch %d", len(t), x.Dim(0))
	}
	if !cond.Valid() || cond.Rank() != 3 || cond.Dim(0) != x.Dim(0) || cond.Dim(2) != c.ContextDim {
		return fmt.Errorf("unet: context %v, want [%d, T, %d]", cond, x.Dim(0), c.ContextDim)
	}
	return nil
}

// module is one sub-module of a sequence (TimestepEmbedSequential).
type module interface {
	forward(r *run, x tensor.Tensor) (tensor.Tensor, error)
}

// sequence is one input/middle/output block: modules applied in order,
// each given the time embedding and context as it needs.
type sequence struct {
	name    string // "input_blocks.4"
	modules []module
}

// newSequence starts the block name and returns its loader.
func newSequence(l blocks.Loader, name string) (*sequence, blocks.Loader) {
	return &sequence{name: name}, l.Sub(name)
}

// next is the loader of the module added next ("input_blocks.4.1"), given
// the sequence's loader.
func (s *sequence) next(l blocks.Loader) blocks.Loader { return l.Sub(fmt.Sprint(len(s.modules))) }

func (s *sequence) add(m module) { s.modules = append(s.modules, m) }

func (s *sequence) forward(r *run, x tensor.Tensor) (tensor.Tensor, error) {
	for i, m := range s.modules {
		mark := r.f.Mark()
		y, err := m.forward(r, x)
		if err != nil {
			return tensor.Tensor{}, fmt.Errorf("unet: %s.%d: %w", s.name, i, err)
		}
		r.f.Release(mark, y) // the module's intermediates; its output lives to the caller's Release
		x = y
		if r.trace != nil {
			r.trace(fmt.Sprintf("%s.%d", s.name, i), x)
		}
	}
	r.trace.Trace(s.name, x)
	return x, nil
}

// convIn is input_blocks.0.0, the first 3x3 convolution.
type convIn struct{ conv blocks.Conv2D }

func (c *convIn) forward(r *run, x tensor.Tensor) (tensor.Tensor, error) {
	y := r.f.Conv(c.conv, x) // [B, C, H, W]
	return y, r.f.Err()
}
