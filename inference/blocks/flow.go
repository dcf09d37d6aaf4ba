package blocks

import (
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Flow runs a chain of operators with a sticky error, so model code reads
// as one line per operator: after the first failure every call returns the
// zero Tensor and Err reports that failure. A Flow is used by one goroutine.
type Flow struct {
	E   *ops.Engine
	err error
}

// NewFlow starts a flow on e.
func NewFlow(e *ops.Engine) *Flow { return &Flow{E: e} }

// Err returns the first error of the flow.
func (f *Flow) Err() error { return f.err }

// Fail records err (if it is the first) and returns the zero Tensor.
func (f *Flow) Fail(err error) tensor.Tensor {
	if f.err == nil {
		f.err = err
	}
	return tensor.Tensor{}
}

// Do records the error of one operator call and passes its result on.
func (f *Flow) Do(y tensor.Tensor, err error) tensor.Tensor {
	if err != nil {
		return f.Fail(err)
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
