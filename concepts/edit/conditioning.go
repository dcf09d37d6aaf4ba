package edit

import (
	"context"
	"fmt"

	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// Set is the concepts of one generation, as the pipeline.ConditioningEdit
// of a pipeline.Request: their placeholder words with their embeddings,
// and an Editor for the encoded conditioning (with global locking, built
// from the prompts re-encoded with each placeholder replaced by its
// superclass word). Every concept of the set is applied, to every row of
// the batch (the unconditional ones too), whether or not its word appears
// in the prompt. An empty Set changes nothing.
type Set struct {
	Concepts []*Concept
	Metric   Metric
	// Options select the multi-concept form and the key locking; Super is
	// computed, whatever it holds.
	Options Options
}

var _ pipeline.ConditioningEdit = (*Set)(nil)

// Words returns the concepts' placeholder words (those that have one) and
// their embeddings [N, D] as one constant table. A concept whose embedding
// is not a [D] or [1, D] tensor of the common width gives an invalid table,
// which the pipeline reports.
func (s *Set) Words() ([]string, tensor.Tensor) {
	var words []string
	var table []float32
	d := -1
	for _, c := range s.withWords() {
		e := c.Embedding
		if !e.Valid() || e.Size() == 0 || (d >= 0 && e.Size() != d) || (e.Rank() != 1 && (e.Rank() != 2 || e.Dim(0) != 1)) {
			return words, tensor.Tensor{}
		}
		d = e.Size()
		words = append(words, c.Word)
		table = append(table, e.Data()...)
	}
	if len(words) == 0 {
		return nil, tensor.Tensor{}
	}
	return words, tensor.MustNew(table, len(words), d)
}

// withWords lists the concepts that have a placeholder word, in order.
func (s *Set) withWords() []*Concept {
	var out []*Concept
	for _, c := range s.Concepts {
		if c != nil && c.Word != "" {
			out = append(out, c)
		}
	}
	return out
}

// Editor returns the K/V editor for the conditioning (nil for an empty
// set).
func (s *Set) Editor(ctx context.Context, c *pipeline.Conditioning) (unet.KVEditor, error) {
	if len(s.Concepts) == 0 {
		return nil, nil
	}
	if c.Engine == nil {
		return nil, fmt.Errorf("edit: the conditioning has no engine")
	}
	opt := s.Options
	opt.Super = tensor.Tensor{}
	if opt.Lock == Global {
		replace := map[int]int{}
		for i, k := range s.withWords() {
			if i >= len(c.WordIDs) {
				return nil, fmt.Errorf("edit: concept %q: the pipeline gave no id for its word %q", k.Name, k.Word)
			}
			ids, ok := c.Tokenizer.Lookup(k.Superclass)
			if !ok || len(ids) != 1 {
				return nil, fmt.Errorf("edit: concept %q: superclass %q must be one token for global locking (it is %d)", k.Name, k.Superclass, len(ids))
			}
			replace[c.WordIDs[i]] = ids[0]
		}
		super, err := c.Reencode(ctx, replace)
		if err != nil {
			return nil, fmt.Errorf("edit: superclass prompts: %w", err)
		}
		opt.Super = super
	}
	ed, err := NewEditor(c.Engine, c.Context, s.Concepts, s.Metric, opt)
	if err != nil {
		return nil, err
	}
	return ed, nil
}
