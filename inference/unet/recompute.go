package unet

import (
	"fmt"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Activation recomputation (Call.Recompute). Each input, middle and output
// block is one checkpoint whose inputs are its hidden state, its skip (for
// output blocks, concatenated inside the checkpoint so the concatenation
// is not kept either) and the K and V of its cross-attention layers. Those
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

// crossLayers lists the attn2 layers of the sequence, in forward order.
func (s *sequence) crossLayers() []*attention {
	var out []*attention
	for _, m := range s.modules {
		if st, ok := m.(*spatialTransformer); ok {
			for _, b := range st.blocks {
				out = append(out, b.attn2)
			}
		}
	}
	return out
}

// run applies the sequence to x, concatenated with skip first when skip
// is valid (output blocks), as a checkpoint of r.rc when set.
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
	in := []tensor.Tensor{x}
	if skip.Valid() {
		in = append(in, skip)
	}
	cross := s.crossLayers()
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
		return s.forward(sub, h)
	}
	y, err := r.rc.CheckpointOn(r.f.E, r.pool, block, in...) // the recomputation converts each weight once
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("unet: %s: %w", s.name, err)
	}
	return y, nil
}
