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
	linear  bool             // proj_in/proj_out are stored as Linear (SD2) rather than 1x1 convs
	projIn  blocks.Linear    // proj_in [inner, C]: a 1x1 conv or a Linear, the same map
	projOut blocks.Linear    // proj_out [C, inner]
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
		st.projIn = blocks.LoadLinear(l, "proj_in", ch, inner, true)
		st.projOut = blocks.LoadLinear(l, "proj_out", inner, ch, true)
	} else {
		st.projIn = blocks.LoadPointwise(l, "proj_in", ch, inner)
		st.projOut = blocks.LoadPointwise(l, "proj_out", inner, ch)
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
	t = f.LinearToTokens(s.projIn, t) // [B, N, inner]
	if r.trace != nil {
		r.trace(s.name+".proj_in", s.asStored(f, t, h, w))
	}
	for _, b := range s.blocks {
		t = b.forward(r, t) // [B, N, inner]
		r.trace.Trace(b.name, t)
	}
	if r.trace == nil {
		return f.LinearFromTokens(s.projOut, t, x, h, w), f.Err() // proj_out + x, [B, C, H, W]
	}
	o := f.LinearFromTokens(s.projOut, t, tensor.Tensor{}, h, w) // [B, C, H, W]
	if s.linear {
		r.trace(s.name+".proj_out", f.ToTokens(o)) // [B, N, C]
	} else {
		r.trace(s.name+".proj_out", o)
	}
	return f.Add(o, x), f.Err() // [B, C, H, W]
}

// asStored returns tokens t [B, h*w, C] in the layout the reference
// computes proj_in in, for tracing: tokens for Linear projections, an
// image [B, C, h, w] for 1x1 convolutions.
func (s *spatialTransformer) asStored(f *blocks.Flow, t tensor.Tensor, h, w int) tensor.Tensor {
	if s.linear {
		return t
	}
	return f.FromTokens(t, h, w)
}

// basicBlock is attention.BasicTransformerBlock: pre-LN self-attention,
// cross-attention over the context, and a GEGLU feed-forward, each added
// to the residual stream.
type basicBlock struct {
	name  string // "input_blocks.1.1.transformer_blocks.0"
	norm1 blocks.LayerNorm
	attn1 *attention // self-attention
	norm2 blocks.LayerNorm
	attn2 *attention // cross-attention (K/V through Call.Editor)
	norm3 blocks.LayerNorm
	ffIn  blocks.Linear // ff.net.0.proj (GEGLU input) [2*4*inner, inner]
	ffOut blocks.Linear // ff.net.2 (ff.net.1 is dropout) [inner, 4*inner]
}

func (b *basicBlock) forward(r *run, x tensor.Tensor) tensor.Tensor {
	f := r.f
	h := f.LayerNorm(b.norm1, x)    // [B, N, inner]
	x = b.attn1.forward(r, h, h, x) // x + attn1, [B, N, inner]
	h = f.LayerNorm(b.norm2, x)
	x = b.attn2.forward(r, h, r.context, x) // x + attn2, [B, N, inner]
	h = f.LayerNorm(b.norm3, x)
	h = f.Linear(b.ffIn, h) // [B, N, 8*inner]
	h = f.GEGLU(h)          // [B, N, 4*inner]
	if r.trace == nil {
		return f.LinearAdd(b.ffOut, h, x) // x + ff, [B, N, inner]
	}
	h = f.Linear(b.ffOut, h) // [B, N, inner]
	r.trace(b.name+".ff", h)
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
// self-attention) and returns the result added to res [B, N, inner] (the
// residual stream; the addition is fused into to_out unless tracing).
func (a *attention) forward(r *run, x, kv, res tensor.Tensor) tensor.Tensor {
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
	if r.trace == nil {
		return f.LinearAdd(a.toOut, o, res) // res + to_out, [B, N, inner]
	}
	o = f.Linear(a.toOut, o) // [B, N, inner]
	r.trace(a.name, o)
	return f.Add(res, o)
}

// project is to_k/to_v: the plain Linear, or the editor for attn2.
func (a *attention) project(r *run, kv KV, lin blocks.Linear, ctx tensor.Tensor) tensor.Tensor {
	f := r.f
	if pre, ok := r.kv[a]; ok && a.cross && f.Err() == nil { // computed up front (Call.Recompute)
		return pre[kv]
	}
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
