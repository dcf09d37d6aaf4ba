package unet

import (
	"fmt"
	"math"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// ffMult is the FeedForward expansion of attention.py (mult=4).
const ffMult = 4

// spatialTransformer is attention.SpatialTransformer: GroupNorm, proj_in,
// pixels as tokens through BasicTransformerBlocks, proj_out, residual.
type spatialTransformer struct {
	name    string           // "input_blocks.1.1"
	norm    blocks.GroupNorm // norm (eps 1e-6)
	linear  bool             // proj_in/proj_out are Linear on tokens (SD2) rather than 1x1 convs
	projIn  blocks.Conv2D    // proj_in (1x1 conv) when !linear
	projOut blocks.Conv2D    // proj_out (1x1 conv) when !linear
	linIn   blocks.Linear    // proj_in when linear
	linOut  blocks.Linear    // proj_out when linear
	blocks  []*basicBlock    // transformer_blocks.i
}

func (m *Model) loadTransformer(l blocks.Loader, ch int) *spatialTransformer {
	cfg := m.Config
	heads, dimHead := cfg.heads(ch)
	inner := heads * dimHead
	st := &spatialTransformer{
		name:   l.Path(),
		norm:   blocks.LoadGroupNorm(l, "norm", ch, cfg.NormGroups, transformerNormEps),
		linear: cfg.UseLinearProjection,
	}
	if st.linear {
		st.linIn = blocks.LoadLinear(l, "proj_in", ch, inner, true)
		st.linOut = blocks.LoadLinear(l, "proj_out", inner, ch, true)
	} else {
		st.projIn = blocks.Conv1x1(l, "proj_in", ch, inner)
		st.projOut = blocks.Conv1x1(l, "proj_out", inner, ch)
	}
	for d := range cfg.TransformerDepth {
		bl := l.Sub(fmt.Sprintf("transformer_blocks.%d", d))
		b := &basicBlock{
			name:  bl.Path(),
			norm1: blocks.LoadLayerNorm(bl, "norm1", inner, layerNormEps),
			attn1: loadAttention(bl.Sub("attn1"), inner, inner, heads, dimHead, false),
			norm2: blocks.LoadLayerNorm(bl, "norm2", inner, layerNormEps),
			attn2: loadAttention(bl.Sub("attn2"), inner, cfg.ContextDim, heads, dimHead, true),
			norm3: blocks.LoadLayerNorm(bl, "norm3", inner, layerNormEps),
			ffIn:  blocks.LoadLinear(bl, "ff.net.0.proj", inner, 2*ffMult*inner, true),
			ffOut: blocks.LoadLinear(bl, "ff.net.2", ffMult*inner, inner, true),
		}
		m.cross = append(m.cross, b.attn2)
		st.blocks = append(st.blocks, b)
	}
	return st
}

func (s *spatialTransformer) forward(r *run, x tensor.Tensor) (tensor.Tensor, error) {
	f := r.f
	h, w := x.Dim(2), x.Dim(3)
	t := f.GroupNorm(s.norm, x) // [B, C, H, W]
	r.trace.Trace(s.name+".norm", t)
	if s.linear {
		t = f.ToTokens(t)        // [B, N, C]
		t = f.Linear(s.linIn, t) // [B, N, inner]
		r.trace.Trace(s.name+".proj_in", t)
	} else {
		t = f.Conv(s.projIn, t) // [B, inner, H, W]
		r.trace.Trace(s.name+".proj_in", t)
		t = f.ToTokens(t) // [B, N, inner]
	}
	for _, b := range s.blocks {
		t = b.forward(r, t) // [B, N, inner]
		r.trace.Trace(b.name, t)
	}
	if s.linear {
		t = f.Linear(s.linOut, t) // [B, N, C]
		r.trace.Trace(s.name+".proj_out", t)
		t = f.FromTokens(t, h, w) // [B, C, H, W]
	} else {
		t = f.FromTokens(t, h, w) // [B, inner, H, W]
		t = f.Conv(s.projOut, t)  // [B, C, H, W]
		r.trace.Trace(s.name+".proj_out", t)
	}
	return f.Add(t, x), f.Err() // [B, C, H, W]
}

// basicBlock is attention.BasicTransformerBlock: pre-LN self-attention,
// cross-attention over the context, and a GEGLU feed-forward, each added
// to the residual stream.
type basicBlock struct {
	name  string // "input_blocks.1.1.transformer_blocks.0"
	norm1 blocks.LayerNorm
	attn1 *attention // self-attention
	norm2 blocks.LayerNorm
	attn2 *attention // cross-attention (K/V through Model.Editor)
	norm3 blocks.LayerNorm
	ffIn  blocks.Linear // ff.net.0.proj (GEGLU input) [2*4*inner, inner]
	ffOut blocks.Linear // ff.net.2 (ff.net.1 is dropout) [inner, 4*inner]
}

func (b *basicBlock) forward(r *run, x tensor.Tensor) tensor.Tensor {
	f := r.f
	h := f.LayerNorm(b.norm1, x) // [B, N, inner]
	h = b.attn1.forward(r, h, h) // [B, N, inner]
	x = f.Add(x, h)
	h = f.LayerNorm(b.norm2, x)
	h = b.attn2.forward(r, h, r.context) // [B, N, inner]
	x = f.Add(x, h)
	h = f.LayerNorm(b.norm3, x)
	h = f.Linear(b.ffIn, h)  // [B, N, 8*inner]
	h = f.GEGLU(h)           // [B, N, 4*inner]
	h = f.Linear(b.ffOut, h) // [B, N, inner]
	r.trace.Trace(b.name+".ff", h)
	return f.Add(x, h)
}

// attention is attention.CrossAttention: bias-free q/k/v projections,
// multi-head softmax attention (heads are contiguous slices of the inner
// width, scale dim_head^-0.5), and to_out.0 with bias.
type attention struct {
	name  string        // "input_blocks.1.1.transformer_blocks.0.attn2"
	toQ   blocks.Linear // to_q [inner, inner]
	toK   blocks.Linear // to_k [inner, Dk]
	toV   blocks.Linear // to_v [inner, Dk]
	toOut blocks.Linear // to_out.0 (to_out.1 is dropout)
	heads int
	scale float32
	cross bool // attn2: K/V through the editor
}

// loadAttention reads one attention layer; for cross-attention (attn2)
// to_k/to_v stay float32 whatever the HalfMode, since editors are given
// them as tensors (19 M values in SD1.5, 77 MB).
func loadAttention(l blocks.Loader, inner, kvDim, heads, dimHead int, cross bool) *attention {
	kv := l
	if cross {
		kv = l.WithHalf(blocks.HalfNever)
	}
	return &attention{
		name:  l.Path(),
		toQ:   blocks.LoadLinear(l, "to_q", inner, inner, false),
		toK:   blocks.LoadLinear(kv, "to_k", kvDim, inner, false),
		toV:   blocks.LoadLinear(kv, "to_v", kvDim, inner, false),
		toOut: blocks.LoadLinear(l, "to_out.0", inner, inner, true),
		heads: heads,
		scale: float32(1 / math.Sqrt(float64(dimHead))),
		cross: cross,
	}
}

// forward attends from x [B, N, inner] to kv [B, T, Dk] (x itself for
// self-attention).
func (a *attention) forward(r *run, x, kv tensor.Tensor) tensor.Tensor {
	f := r.f
	q := f.Linear(a.toQ, x)             // [B, N, inner]
	k := a.project(r, Key, a.toK, kv)   // [B, T, inner]
	v := a.project(r, Value, a.toV, kv) // [B, T, inner]
	if r.trace != nil && a.cross {
		r.trace(a.name+".to_q", q)
		r.trace(a.name+".to_k", k)
		r.trace(a.name+".to_v", v)
	}
	o := f.Attention(q, k, v, a.heads, a.scale, false) // [B, N, inner]
	o = f.Linear(a.toOut, o)                           // [B, N, inner]
	r.trace.Trace(a.name, o)
	return o
}

// project is to_k/to_v: the plain Linear, or the editor for attn2.
func (a *attention) project(r *run, kv KV, lin blocks.Linear, ctx tensor.Tensor) tensor.Tensor {
	f := r.f
	if !a.cross || r.editor == nil || f.Err() != nil {
		return f.Linear(lin, ctx)
	}
	y, err := r.editor.Project(a.name, kv, ctx, lin.Weight)
	if err != nil {
		return f.Fail(fmt.Errorf("%s.%s: editor: %w", a.name, kv, err))
	}
	want := []int{ctx.Dim(0), ctx.Dim(1), lin.Weight.Dim(0)}
	if !y.Valid() || !tensor.SameShape(y.Shape(), want) {
		return f.Fail(fmt.Errorf("%s.%s: editor returned %v, want %v", a.name, kv, y, want))
	}
	return y
}
