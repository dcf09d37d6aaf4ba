// Package clip is the CLIP text transformer that conditions Stable
// Diffusion 1.x (Radford et al., "Learning Transferable Visual Models From
// Natural Language Supervision", 2021; openai/CLIP clip/model.py text tower,
// as HF CLIPTextModel with SD1.5's checkpoint names): token + position
// embeddings, pre-LN blocks with causal self-attention and a quick-GELU
// MLP, and a final LayerNorm.
//
// Legend: B batch, T tokens (MaxPositions, 77), D width (HiddenSize).
package clip

import (
	"fmt"
	"math"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Model is a loaded text encoder. It only reads its weights during
// Forward, so one Model may serve concurrent calls; added word embeddings
// are given per call (Options.Extra).
type Model struct {
	Config Config

	e        *ops.Engine
	tokenEmb tensor.Tensor    // embeddings.token_embedding.weight [V, D]
	posEmb   tensor.Tensor    // embeddings.position_embedding.weight [T, D]
	layers   []*layer         // encoder.layers.i
	final    blocks.LayerNorm // final_layer_norm
	bytes    int64            // weight memory as held
	mapped   int64            // part of bytes mapped from the file
	pool     *blocks.WeightPool
}

// layer is one CLIPEncoderLayer (OpenAI ResidualAttentionBlock).
type layer struct {
	norm1 blocks.LayerNorm // layer_norm1 (ln_1)
	q     blocks.Linear    // self_attn.q_proj [D, D]
	k     blocks.Linear    // self_attn.k_proj [D, D]
	v     blocks.Linear    // self_attn.v_proj [D, D]
	out   blocks.Linear    // self_attn.out_proj [D, D]
	norm2 blocks.LayerNorm // layer_norm2 (ln_2)
	fc1   blocks.Linear    // mlp.fc1 (c_fc) [I, D]
	fc2   blocks.Linear    // mlp.fc2 (c_proj) [D, I]
}

// Load builds the text encoder of cfg from src, strictly: every tensor
// under Prefix must be used (embeddings.position_ids, the 0..T-1 buffer of
// SD checkpoints, is allowed and ignored) and have the expected shape; all
// problems are reported in one *blocks.LoadError. opts (at most one) say
// which layer weights are held as float16; the default keeps the
// checkpoint's dtype. The embeddings always stay float32.
func Load(e *ops.Engine, src weights.Source, cfg Config, opts ...blocks.LoadOptions) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := blocks.NewLoader(src, "clip", Prefix, opts...)
	d, in, eps := cfg.HiddenSize, cfg.IntermediateSize, cfg.LayerNormEps
	l.Ignore("embeddings.position_ids")
	m := &Model{
		Config:   cfg,
		e:        e,
		tokenEmb: l.Tensor("embeddings.token_embedding.weight", cfg.VocabSize, d),
		posEmb:   l.Tensor("embeddings.position_embedding.weight", cfg.MaxPositions, d),
		final:    blocks.LoadLayerNorm(l, "final_layer_norm", d, eps),
	}
	for i := range cfg.NumLayers {
		ll := l.Sub(fmt.Sprintf("encoder.layers.%d", i))
		m.layers = append(m.layers, &layer{
			norm1: blocks.LoadLayerNorm(ll, "layer_norm1", d, eps),
			q:     blocks.LoadLinear(ll, "self_attn.q_proj", d, d, true),
			k:     blocks.LoadLinear(ll, "self_attn.k_proj", d, d, true),
			v:     blocks.LoadLinear(ll, "self_attn.v_proj", d, d, true),
			out:   blocks.LoadLinear(ll, "self_attn.out_proj", d, d, true),
			norm2: blocks.LoadLayerNorm(ll, "layer_norm2", d, eps),
			fc1:   blocks.LoadLinear(ll, "mlp.fc1", d, in, true),
			fc2:   blocks.LoadLinear(ll, "mlp.fc2", in, d, true),
		})
	}
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

// TokenEmbedding returns the token table [VocabSize, D] (read-only).
func (m *Model) TokenEmbedding() tensor.Tensor { return m.tokenEmb }

// Options select what ForwardWith computes.
type Options struct {
	// ClipSkip picks the layer whose output is returned: 0 or 1 is the last
	// layer (SD1.5), 2 the penultimate ("Clip skip 2"), n the n-th from the
	// end. As in AUTOMATIC1111's web UI, the final LayerNorm is applied to
	// the chosen layer's output, and later layers are not run.
	ClipSkip int
	// Hidden asks for Result.Hidden.
	Hidden bool
	// Extra, when valid, is a table [N, D] of added word embeddings for
	// this call (textual inversion, Perfusion's concept words): token id
	// VocabSize+i looks up its row i. It may require gradients; they flow
	// back through the call.
	Extra tensor.Tensor
	// Recompute, when set, makes each encoder layer a checkpoint of it
	// (activation recomputation, see blocks.Recompute.CheckpointOn): for a
	// call whose gradients are taken, each layer's float16 weights are
	// converted once for its recomputation and backward pass instead of
	// on every read. Check its Err after ag.Backward. nil keeps the graph.
	Recompute *blocks.Recompute
}

// Result is the output of ForwardWith.
type Result struct {
	// Out is final_layer_norm of the chosen layer's output [B, T, D]
	// (last_hidden_state when ClipSkip <= 1).
	Out tensor.Tensor
	// Hidden (on request) holds the embeddings (token + position) and then
	// each layer's output before the final LayerNorm, HF hidden_states
	// style: Hidden[0] = embeddings, Hidden[i+1] = encoder.layers.i, for
	// the layers that ran.
	Hidden []tensor.Tensor
}

// Forward encodes token ids [B, T] (row-major, batch rows of T ids each;
// T <= MaxPositions) into the conditioning [B, T, D] (last_hidden_state).
func (m *Model) Forward(ids []int, batch int) (tensor.Tensor, error) {
	r, err := m.ForwardWith(ids, batch, Options{})
	return r.Out, err
}

// ForwardWith is Forward with options.
func (m *Model) ForwardWith(ids []int, batch int, opt Options) (Result, error) {
	c := m.Config
	if batch <= 0 || len(ids)%batch != 0 {
		return Result{}, fmt.Errorf("clip: %d ids do not split into batch %d", len(ids), batch)
	}
	t := len(ids) / batch
	if t == 0 || t > c.MaxPositions {
		return Result{}, fmt.Errorf("clip: %d tokens per row, want 1..%d", t, c.MaxPositions)
	}
	run := c.NumLayers
	if opt.ClipSkip > 1 {
		if opt.ClipSkip > c.NumLayers {
			return Result{}, fmt.Errorf("clip: clip skip %d with only %d layers", opt.ClipSkip, c.NumLayers)
		}
		run = c.NumLayers - opt.ClipSkip + 1
	}
	f := blocks.NewFlow(m.e)
	x := m.embed(f, ids, batch, t, opt.Extra) // [B, T, D]
	if err := f.Err(); err != nil {
		return Result{}, fmt.Errorf("clip: embeddings: %w", err)
	}
	var res Result
	if opt.Hidden {
		res.Hidden = append(res.Hidden, x)
	}
	heads := c.NumHeads
	scale := float32(1 / math.Sqrt(float64(c.HiddenSize/heads)))
	for i, l := range m.layers[:run] {
		var err error
		if opt.Recompute != nil {
			x, err = opt.Recompute.CheckpointOn(m.e, m.pool, func(e *ops.Engine, in []tensor.Tensor) (tensor.Tensor, error) {
				return m.layer(blocks.NewFlow(e), l, in[0], heads, scale)
			}, x)
		} else {
			x, err = m.layer(f, l, x, heads, scale)
		}
		if err != nil {
			return Result{}, fmt.Errorf("clip: encoder.layers.%d: %w", i, err)
		}
		if opt.Hidden {
			res.Hidden = append(res.Hidden, x)
		}
	}
	res.Out = f.LayerNorm(m.final, x) // [B, T, D]
	if err := f.Err(); err != nil {
		return Result{}, fmt.Errorf("clip: final_layer_norm: %w", err)
	}
	return res, nil
}

// layer applies encoder layer l to x [B, T, D] on f.
func (m *Model) layer(f *blocks.Flow, l *layer, x tensor.Tensor, heads int, scale float32) (tensor.Tensor, error) {
	h := f.LayerNorm(l.norm1, x)                  // [B, T, D]
	q := f.Linear(l.q, h)                         // [B, T, D]
	k := f.Linear(l.k, h)                         // [B, T, D]
	v := f.Linear(l.v, h)                         // [B, T, D]
	a := f.Attention(q, k, v, heads, scale, true) // [B, T, D], causal
	x = f.Add(x, f.Linear(l.out, a))              // [B, T, D]
	h = f.LayerNorm(l.norm2, x)
	h = f.Linear(l.fc1, h) // [B, T, I]
	if m.Config.HiddenAct == GELU {
		h = f.GELU(h)
	} else {
		h = f.QuickGELU(h)
	}
	x = f.Add(x, f.Linear(l.fc2, h)) // [B, T, D]
	return x, f.Err()
}

// embed is token_embedding[ids] + position_embedding[0..T-1]; ids at or
// above VocabSize look up extra (Options.Extra).
func (m *Model) embed(f *blocks.Flow, ids []int, batch, t int, extra tensor.Tensor) tensor.Tensor {
	v, d := m.Config.VocabSize, m.Config.HiddenSize
	nExtra := 0
	if extra.Valid() {
		if extra.Rank() != 2 || extra.Dim(1) != d {
			return f.Fail(fmt.Errorf("extra embeddings %v, want [N, %d]", extra, d))
		}
		nExtra = extra.Dim(0)
	}
	hasExtra := false
	for _, id := range ids {
		if id < 0 || id >= v+nExtra {
			return f.Fail(fmt.Errorf("token id %d out of range [0, %d)", id, v+nExtra))
		}
		hasExtra = hasExtra || id >= v
	}
	pos := make([]int, len(ids))
	for i := range pos {
		pos[i] = i % t
	}
	p := f.Embedding(m.posEmb, pos, batch, t) // [B, T, D]
	if !hasExtra {
		return f.Add(f.Embedding(m.tokenEmb, ids, batch, t), p) // [B, T, D]
	}
	if m.tokenEmb.RequiresGrad() {
		return f.Fail(fmt.Errorf("extra embeddings need a frozen token table"))
	}
	// Two lookups whose rows add up to the mixed lookup: the frozen table
	// with extra positions zeroed, plus the extra table (with a zero row
	// appended for the ordinary positions). Gradients reach only the small
	// extra table, never a copy of the vocabulary.
	baseIDs := make([]int, len(ids))
	extraIDs := make([]int, len(ids))
	for i, id := range ids {
		if id >= v {
			extraIDs[i] = id - v
		} else {
			baseIDs[i], extraIDs[i] = id, nExtra // nExtra: the zero row
		}
	}
	base := f.Embedding(m.tokenEmb, baseIDs, batch, t) // [B, T, D], a constant
	if f.Err() == nil {
		rows := base.Data() // a fresh buffer of this call: clear the extra positions
		for i, id := range ids {
			if id >= v {
				clear(rows[i*d : (i+1)*d])
			}
		}
	}
	table := f.Concat(f.Reshape(extra, 1, nExtra, d), tensor.Zeros(1, 1, d)) // [1, N+1, D]
	table = f.Reshape(table, nExtra+1, d)                                    // [N+1, D]
	x := f.Add(base, f.Embedding(table, extraIDs, batch, t))                 // [B, T, D]
	return f.Add(x, p)
}
