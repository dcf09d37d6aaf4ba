package unet

import (
	"fmt"
	"slices"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Activation recomputation (Call.Recompute). Each module of an input,
// middle and output block (a ResBlock, a transformer, a down- or
// upsampler) is one checkpoint whose inputs are its hidden state, the
// block's skip for the first module of an output block (concatenated
// inside the checkpoint so the concatenation is not kept either) and the
// K and V of its cross-attention layers. Those
// are computed once per call before the blocks (projectAll), so the
// editor, whose gates and targets require gradients, runs outside every
// checkpoint and is never rebuilt; gradients reach it, and the context,
// through the K and V inputs of the checkpoints. The time embedding
// depends on constants only and is closed over.

// projectAll computes every attn2 K and V of the call into r.kv.
func (m *Model) projectAll(r *run) error {
	r.kv = make(map[*attention][2]tensor.Tensor, len(m.cross))
	for _, a := range m.cross {
		k := a.project(r, Key, a.toK, r.context)   // [B, T, inner]
		v := a.project(r, Value, a.toV, r.context) // [B, T, inner]
		if err := r.f.Err(); err != nil {
			return fmt.Errorf("unet: %w", err)
		}
		r.kv[a] = [2]tensor.Tensor{k, v}
	}
	return nil
}

// crossLayers lists the attn2 layers of module m, in forward order.
func crossLayers(m module) []*attention {
	var out []*attention
	if st, ok := m.(*spatialTransformer); ok {
		for _, b := range st.blocks {
			out = append(out, b.attn2)
		}
	}
	return out
}

// run applies the sequence to x, concatenated with skip first when skip
// is valid (output blocks). With r.rc set, each module is a checkpoint of
// it (see runModule).
func (s *sequence) run(r *run, x, skip tensor.Tensor) (tensor.Tensor, error) {
	if r.rc == nil {
		if skip.Valid() {
			cat := r.f.Concat(x, skip) // [B, C + C_skip, H_i, W_i]: h first
			if err := r.f.Err(); err != nil {
				return tensor.Tensor{}, fmt.Errorf("unet: %s: skip concat: %w", s.name, err)
			}
			r.f.Free(x, skip) // both live on only in cat
			x = cat
		}
		return s.forward(r, x)
	}
	for i, m := range s.modules {
		var err error
		if x, err = s.runModule(r, i, m, x, skip); err != nil {
			return tensor.Tensor{}, err
		}
		skip = tensor.Tensor{} // the first module takes it
		if !x.RequiresGrad() && i < len(s.modules)-1 {
			// Run plainly (no input needs gradients), its result may be a
			// buffer of the flow's arena, which the caller's Release hands
			// back at the block's end; the next checkpoint keeps its
			// inputs until the backward pass, so it gets a copy.
			x = tensor.MustNew(slices.Clone(x.Data()), x.Shape()...)
		}
		if r.trace != nil {
			r.trace(fmt.Sprintf("%s.%d", s.name, i), x)
		}
	}
	r.trace.Trace(s.name, x)
	return x, nil
}

// runModule runs module i of the sequence on x (concatenated with skip
// first when skip is valid) as a checkpoint of r.rc. A checkpoint per
// module, not per block, bounds what its recomputation holds: the
// module's float16 weights converted to float32 once for its
// recomputation and backward pass (blocks.Recompute.CheckpointOn), at
// most one ResBlock's or one transformer's.
func (s *sequence) runModule(r *run, i int, m module, x, skip tensor.Tensor) (tensor.Tensor, error) {
	in := []tensor.Tensor{x}
	if skip.Valid() {
		in = append(in, skip)
	}
	cross := crossLayers(m)
	for _, a := range cross {
		kv := r.kv[a]
		in = append(in, kv[0], kv[1])
	}
	first, upTo := true, r.upTo // r.upTo moves on before the recomputation
	block := func(e *ops.Engine, in []tensor.Tensor) (tensor.Tensor, error) {
		sub := &run{f: blocks.NewFlow(e), emb: r.emb, context: r.context, trace: r.trace, upTo: upTo, rc: r.rc, pool: r.pool}
		if !first && sub.trace != nil {
			sub.trace = func(string, tensor.Tensor) {} // traced once; the same operators again
		}
		first = false
		h := in[0]
		rest := in[1:]
		if skip.Valid() {
			h = sub.f.Concat(h, in[1]) // [B, C + C_skip, H_i, W_i]
			if err := sub.f.Err(); err != nil {
				return tensor.Tensor{}, fmt.Errorf("unet: %s: skip concat: %w", s.name, err)
			}
			rest = in[2:]
		}
		sub.kv = make(map[*attention][2]tensor.Tensor, len(cross))
		for i, a := range cross {
			sub.kv[a] = [2]tensor.Tensor{rest[2*i], rest[2*i+1]}
		}
		y, err := m.forward(sub, h)
		if err != nil {
			return tensor.Tensor{}, fmt.Errorf("unet: %s.%d: %w", s.name, i, err)
		}
		return y, nil
	}
	y, err := r.rc.CheckpointOn(r.f.E, r.pool, block, in...) // the recomputation converts each weight once
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("unet: %s.%d: %w", s.name, i, err)
	}
	return y, nil
}
