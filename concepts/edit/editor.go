package edit

import (
	"fmt"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// Lock selects where the keys come from (spec §3.6).
type Lock int

const (
	// Local computes keys and values from the prompt's encoding (training,
	// and the default).
	Local Lock = iota
	// Global computes the keys from the encoding of the prompt with every
	// concept word replaced by its superclass word (Options.Super).
	Global
)

// String names the lock as the command line does ("local", "global").
func (l Lock) String() string {
	if l == Global {
		return "global"
	}
	return "local"
}

// Options select the multi-concept form and the key locking of an Editor.
// The zero value is the sum form with local locking.
type Options struct {
	Multi Multi
	Lock  Lock
	// Super is the superclass-prompt encoding, shaped like the context,
	// row for row (unconditional rows: the same encoding as the context's);
	// required by Global, unused otherwise.
	Super tensor.Tensor
}

// Folded is the per-prompt part of the edit: the context with the
// concepts' parts removed (e′, [B, T, D]) and each concept's gate [B, T].
type Folded struct {
	Context tensor.Tensor
	Gates   []tensor.Tensor
}

// FoldContext computes e′ and the gates of the concepts for the context x
// [B, T, D] under the metric m (spec §3.2, §3.5). Gradients flow back to x.
func FoldContext(x tensor.Tensor, concepts []*Concept, m Metric, multi Multi) (Folded, error) {
	if !x.Valid() || x.Rank() != 3 {
		return Folded{}, fmt.Errorf("edit: context %v, want [B, T, D]", x)
	}
	gs, names, err := gatings(concepts, m, x.Dim(2))
	if err != nil {
		return Folded{}, err
	}
	return fold32(x, gs, names, multi)
}

func gatings(concepts []*Concept, m Metric, d int) ([]*gating, []string, error) {
	if m == nil {
		return nil, nil, fmt.Errorf("edit: no metric (C⁻¹)")
	}
	gs := make([]*gating, len(concepts))
	names := make([]string, len(concepts))
	for i, c := range concepts {
		if c == nil {
			return nil, nil, fmt.Errorf("edit: concept %d is nil", i)
		}
		if err := c.check(d); err != nil {
			return nil, nil, err
		}
		g, err := newGating(c.Name, c.Input, m, c.Beta, c.Tau)
		if err != nil {
			return nil, nil, err
		}
		gs[i], names[i] = g, c.Name
	}
	return gs, names, nil
}

func fold32(x tensor.Tensor, gs []*gating, names []string, multi Multi) (Folded, error) {
	dirs, weights, err := removal(gs, names, multi)
	if err != nil {
		return Folded{}, err
	}
	xf, err := Fold(x, dirs, weights)
	if err != nil {
		return Folded{}, err
	}
	out := Folded{Context: xf}
	for i, g := range gs {
		gt, err := Gate(x, g.w, g.beta, g.tau)
		if err != nil {
			return Folded{}, fmt.Errorf("edit: concept %q: %w", names[i], err)
		}
		out.Gates = append(out.Gates, gt)
	}
	return out, nil
}

// Editor is a unet.KVEditor that applies concepts' gated rank-one edits to
// every cross-attention K and V projection of one conditioning batch. It
// is built per batch (NewEditor) and handed to one generation or training
// step through unet.Call; the shared model is never changed. It is safe
// for concurrent Forward calls on the same context.
type Editor struct {
	e        *ops.Engine
	context  tensor.Tensor // the conditioning it was built for, [B, T, D]
	concepts []*Concept
	values   Folded // e′ and gates of the context (V, and K when locked locally)
	keys     Folded // those of the superclass context (K, global locking)
}

var _ unet.KVEditor = (*Editor)(nil)

// NewEditor prepares the edit of concepts (at least one) for the
// conditioning context [B, T, D], every row edited alike (with
// classifier-free guidance the unconditional rows too, spec §7), under the
// metric m. With global locking opt.Super must be the superclass-prompt
// encoding of the same shape.
func NewEditor(e *ops.Engine, context tensor.Tensor, concepts []*Concept, m Metric, opt Options) (*Editor, error) {
	if e == nil {
		return nil, fmt.Errorf("edit: no engine")
	}
	if len(concepts) == 0 {
		return nil, fmt.Errorf("edit: an editor needs at least one concept")
	}
	if !context.Valid() || context.Rank() != 3 {
		return nil, fmt.Errorf("edit: context %v, want [B, T, D]", context)
	}
	gs, names, err := gatings(concepts, m, context.Dim(2))
	if err != nil {
		return nil, err
	}
	ed := &Editor{e: e, context: context, concepts: concepts}
	if ed.values, err = fold32(context, gs, names, opt.Multi); err != nil {
		return nil, err
	}
	switch opt.Lock {
	case Local:
		ed.keys = ed.values
	case Global:
		if !opt.Super.Valid() || !tensor.SameShape(opt.Super.Shape(), context.Shape()) {
			return nil, fmt.Errorf("edit: global locking needs the superclass-prompt encoding shaped %v, got %v", context.Shape(), opt.Super)
		}
		if ed.keys, err = fold32(opt.Super, gs, names, opt.Multi); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("edit: unknown lock %d", opt.Lock)
	}
	return ed, nil
}

// Context returns the conditioning the editor was built for.
func (ed *Editor) Context() tensor.Tensor { return ed.context }

// Gates returns each concept's gate [B, T] on the context (what the values
// use), for diagnostics.
func (ed *Editor) Gates() []tensor.Tensor { return ed.values.Gates }

// Project is the edited projection of unet.KVEditor: W e′ + Σ_c g_c o*_c
// with the layer's key or value targets. context must be the tensor the
// editor was built for.
func (ed *Editor) Project(layer string, kv unet.KV, context, weight tensor.Tensor) (tensor.Tensor, error) {
	if context.Node() != ed.context.Node() || !tensor.SameShape(context.Shape(), ed.context.Shape()) {
		return tensor.Tensor{}, fmt.Errorf("edit: editor built for context %v, called with another %v", ed.context, context)
	}
	f := ed.values
	if kv == unet.Key {
		f = ed.keys
	}
	targets := make([]tensor.Tensor, len(ed.concepts))
	for i, c := range ed.concepts {
		t, ok := c.Layers[layer]
		if !ok {
			return tensor.Tensor{}, fmt.Errorf("edit: concept %q has no targets for layer %s (made for another model?)", c.Name, layer)
		}
		targets[i] = t.V
		if kv == unet.Key {
			targets[i] = t.K
		}
	}
	y, err := Project(ed.e, f.Context, weight, f.Gates, targets)
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("edit: %s.%s: %w", layer, kv, err)
	}
	return y, nil
}

// Similarity returns s_n = e_nᵀC⁻¹i* / i*ᵀC⁻¹i* [B*T] for every encoding of
// x [B, T, D] and the concept's i* (spec §3.2: 1 at i*, 0 when
// C⁻¹-orthogonal to it), for diagnostics.
func Similarity(x tensor.Tensor, c *Concept, m Metric) ([]float32, error) {
	if !x.Valid() || x.Rank() != 3 {
		return nil, fmt.Errorf("edit: context %v, want [B, T, D]", x)
	}
	gs, _, err := gatings([]*Concept{c}, m, x.Dim(2))
	if err != nil {
		return nil, err
	}
	d, data := x.Dim(2), x.Data()
	s := make([]float32, x.Size()/d)
	for r := range s {
		s[r] = float32(dot64(gs[0].w, data[r*d:(r+1)*d]))
	}
	return s, nil
}
