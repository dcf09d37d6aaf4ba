package blocks

import (
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Flow runs a chain of operators with a sticky error, so model code reads
// as one line per operator: after the first failure every call returns the
// zero Tensor and Err reports that failure. A Flow is used by one goroutine.
//
// A Flow made with NewArenaFlow also recycles its operators' results
// through an Arena: model code marks scopes (Mark, then Release with the
// results that live on), frees dead tensors early (Free) and hands the
// final result out with Done. Tensors given back must not be used again:
// their buffers hold later results. As soon as an operator's result
// requires gradients (a graph records the pass and may read any result in
// its backward pass), the flow stops recycling for the rest of the pass.
type Flow struct {
	E   *ops.Engine
	err error
	out *flowOutputs // nil: results are not recycled
}

// NewFlow starts a flow on e.
func NewFlow(e *ops.Engine) *Flow { return &Flow{E: e} }

// NewArenaFlow starts a flow on e whose operators write their results
// into buffers of a (see Arena); a nil a gives NewFlow(e). The flow's E is
// a copy of e lending from the arena (ops.Engine.WithOutputs).
func NewArenaFlow(e *ops.Engine, a *Arena) *Flow {
	if a == nil || e == nil {
		return NewFlow(e)
	}
	out := &flowOutputs{a: a, be: e.B, used: map[int]bool{}}
	return &Flow{E: e.WithOutputs(out), out: out}
}

// Mark starts a scope: Release(mark, ...) gives back what the flow's
// operators produce after it.
func (f *Flow) Mark() int {
	if f.out == nil {
		return 0
	}
	f.out.mu.Lock()
	defer f.out.mu.Unlock()
	return len(f.out.owned)
}

// Release ends the scope begun by mark: every result produced since is
// given back to the arena except those of keep (the scope's outputs),
// which a later Release, Free or Done gives back. Without an arena it does
// nothing.
func (f *Flow) Release(mark int, keep ...tensor.Tensor) {
	if f.out != nil {
		f.out.release(mark, keep, nil)
	}
}

// Free gives back the results under ts, dead from now on. A tensor that
// shares its buffer with one still in use (a Reshape of it) must not be
// freed. Tensors the flow did not produce are ignored.
func (f *Flow) Free(ts ...tensor.Tensor) {
	if f.out != nil {
		f.out.free(ts)
	}
}

// Done ends the pass: every result is given back except those of
// results, which leave the arena for good (the caller owns them), and the
// arena drops idle buffers of sizes this pass did not use.
func (f *Flow) Done(results ...tensor.Tensor) {
	if f.out == nil {
		return
	}
	f.out.release(0, nil, results)
	f.out.mu.Lock()
	used := f.out.used
	f.out.mu.Unlock()
	f.out.a.trim(used)
}

// Err returns the first error of the flow.
func (f *Flow) Err() error { return f.err }

// Fail records err (if it is the first) and returns the zero Tensor.
func (f *Flow) Fail(err error) tensor.Tensor {
	if f.err == nil {
		f.err = err
	}
	return tensor.Tensor{}
}

// Do records the error of one operator call and passes its result on. A
// result that requires gradients stops the recycling of results (see
// Flow).
func (f *Flow) Do(y tensor.Tensor, err error) tensor.Tensor {
	if err != nil {
		return f.Fail(err)
	}
	if f.out != nil && y.Valid() && y.RequiresGrad() {
		f.out.disable()
	}
	return y
}

// Linear applies m to x [..., In].
func (f *Flow) Linear(m Linear, x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.Forward(f.E, x))
}

// LinearAdd applies m to x [..., In] and adds r [..., Out].
func (f *Flow) LinearAdd(m Linear, x, r tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.ForwardAdd(f.E, x, r))
}

// ConvAdd applies m to x [B, C, H, W] and adds r of the output's shape.
func (f *Flow) ConvAdd(m Conv2D, x, r tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.ForwardAdd(f.E, x, r))
}

// Conv applies m to x [B, C, H, W].
func (f *Flow) Conv(m Conv2D, x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.Forward(f.E, x))
}

// GroupNorm applies m to x [B, C, ...].
func (f *Flow) GroupNorm(m GroupNorm, x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.Forward(f.E, x))
}

// GroupNormSiLU applies m to x [B, C, ...], then SiLU, as one operator.
func (f *Flow) GroupNormSiLU(m GroupNorm, x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.ForwardSiLU(f.E, x))
}

// LinearToTokens applies m to the channels of x [B, In, H, W], giving
// tokens [B, H*W, Out].
func (f *Flow) LinearToTokens(m Linear, x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.ForwardToTokens(f.E, x))
}

// LinearFromTokens applies m to tokens t [B, h*w, In], giving an image
// [B, Out, h, w], and adds r of that shape (zero Tensor: nothing).
func (f *Flow) LinearFromTokens(m Linear, t, r tensor.Tensor, h, w int) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.ForwardFromTokens(f.E, t, r, h, w))
}

// LayerNorm applies m to x [..., C].
func (f *Flow) LayerNorm(m LayerNorm, x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(m.Forward(f.E, x))
}

// SiLU is Engine.SiLU.
func (f *Flow) SiLU(x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.SiLU(x))
}

// GELU is Engine.GELU (exact erf).
func (f *Flow) GELU(x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.GELU(x))
}

// QuickGELU is Engine.QuickGELU.
func (f *Flow) QuickGELU(x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.QuickGELU(x))
}

// GEGLU is Engine.GEGLU: [..., 2D] -> [..., D].
func (f *Flow) GEGLU(x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.GEGLU(x))
}

// Attention is Engine.Attention.
func (f *Flow) Attention(q, k, v tensor.Tensor, heads int, scale float32, causal bool) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.Attention(q, k, v, heads, scale, causal))
}

// Upsample2x is Engine.Upsample2x (nearest).
func (f *Flow) Upsample2x(x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.Upsample2x(x))
}

// UpsampleNearest is Engine.UpsampleNearest: [B, C, H, W] -> [B, C, h, w].
func (f *Flow) UpsampleNearest(x tensor.Tensor, h, w int) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.UpsampleNearest(x, h, w))
}

// Add is Engine.Add.
func (f *Flow) Add(a, b tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.Add(a, b))
}

// AddChannel is Engine.AddChannel: x [B, C, ...] + c [B, C].
func (f *Flow) AddChannel(x, c tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.AddChannel(x, c))
}

// Concat is Engine.ConcatChannels.
func (f *Flow) Concat(a, b tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.ConcatChannels(a, b))
}

// ToTokens is Engine.ToTokens: [B, C, H, W] -> [B, H*W, C].
func (f *Flow) ToTokens(x tensor.Tensor) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.ToTokens(x))
}

// FromTokens is Engine.FromTokens: [B, H*W, C] -> [B, C, H, W].
func (f *Flow) FromTokens(x tensor.Tensor, h, w int) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.FromTokens(x, h, w))
}

// Scale is Engine.Scale.
func (f *Flow) Scale(x tensor.Tensor, s float32) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.Scale(x, s))
}

// Embedding is Engine.Embedding.
func (f *Flow) Embedding(table tensor.Tensor, ids []int, shape ...int) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(f.E.Embedding(table, ids, shape...))
}

// Reshape is Tensor.Reshape.
func (f *Flow) Reshape(x tensor.Tensor, shape ...int) tensor.Tensor {
	if f.err != nil {
		return tensor.Tensor{}
	}
	return f.Do(x.Reshape(shape...))
}
