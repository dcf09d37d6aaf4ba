package pipeline

import (
	"context"
	"fmt"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// ConditioningEdit changes how the prompts of one generation condition the
// UNet, without changing the shared models: words with their own input
// embeddings, and a cross-attention K/V editor built from the encoded
// conditioning. Perfusion concepts implement it (concepts/edit).
type ConditioningEdit interface {
	// Words returns the words the prompts may contain (placeholders such
	// as "<tubby>") and their input embeddings [len(words), D], or none.
	Words() ([]string, tensor.Tensor)
	// Editor returns the UNet's K/V editor for this conditioning, or nil
	// for none.
	Editor(ctx context.Context, c *Conditioning) (unet.KVEditor, error)
}

// Conditioning is the encoded text of one generation as the UNet gets it.
type Conditioning struct {
	// Context is the UNet's conditioning [rows, T, D]: with guidance the
	// unconditional rows first (CompVis's cat([uc, c])), then the prompt's.
	Context tensor.Tensor
	// IDs holds each row's token ids (T per row: the 77-id chunks).
	IDs [][]int
	// WordIDs are the token ids of the edit's Words, in order.
	WordIDs   []int
	Tokenizer *tokenizer.Tokenizer
	Engine    *ops.Engine // runs the models

	reencode func(ctx context.Context, replace map[int]int) (tensor.Tensor, error)
}

// Reencode returns Context again for the prompts with token ids replaced
// (replace[from] = to; for global key locking, each placeholder by its
// superclass word), encoded with the same options and emphasis weights.
// Rows where nothing is replaced are copied from Context.
func (c *Conditioning) Reencode(ctx context.Context, replace map[int]int) (tensor.Tensor, error) {
	if c.reencode == nil {
		return tensor.Tensor{}, fmt.Errorf("pipeline: this conditioning cannot be re-encoded")
	}
	return c.reencode(ctx, replace)
}

// editor builds the Conditioning of encs laid out as rows (the prompt of
// each row of cond) and asks the edit for its editor.
func (p *Pipeline) editor(ctx context.Context, edit ConditioningEdit, cond tensor.Tensor, encs []Encoding, rows []int, opt TextOptions) (unet.KVEditor, error) {
	_, extra, err := p.words(opt)
	if err != nil {
		return nil, err
	}
	c := &Conditioning{Context: cond, Tokenizer: p.Tokenizer, Engine: p.Engine}
	for _, i := range rows {
		var ids []int
		for _, ch := range encs[i].Chunks {
			ids = append(ids, ch.IDs[:]...)
		}
		c.IDs = append(c.IDs, ids)
	}
	for i := range opt.Words {
		c.WordIDs = append(c.WordIDs, p.CLIP.Config.VocabSize+i)
	}
	c.reencode = func(ctx context.Context, replace map[int]int) (tensor.Tensor, error) {
		re := append([]Encoding(nil), encs...)
		for i, e := range encs {
			chunks, changed := replaceIDs(e.Chunks, replace)
			if !changed {
				continue
			}
			out, err := p.encodeChunks(ctx, [][]tokenizer.Chunk{chunks}, opt.ClipSkip, extra, opt.Cache)
			if err != nil {
				return tensor.Tensor{}, err
			}
			re[i] = out[0]
		}
		return stackRows(re, rows)
	}
	ed, err := edit.Editor(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("pipeline: conditioning edit: %w", err)
	}
	return ed, nil
}

// stackRows lays out encodings [1, T, D] as the rows [len(rows), T, D],
// row i being encs[rows[i]].
func stackRows(encs []Encoding, rows []int) (tensor.Tensor, error) {
	h := encs[0].Hidden
	t, d := h.Dim(1), h.Dim(2)
	data := make([]float32, 0, len(rows)*t*d)
	for _, i := range rows {
		data = append(data, encs[i].Hidden.Data()...)
	}
	return tensor.New(data, len(rows), t, d) // [rows, T, D]
}

// replaceIDs returns chunks with ids replaced, and whether any was.
func replaceIDs(chunks []tokenizer.Chunk, replace map[int]int) ([]tokenizer.Chunk, bool) {
	out := append([]tokenizer.Chunk(nil), chunks...)
	changed := false
	for i := range out {
		for j, id := range out[i].IDs {
			if to, ok := replace[id]; ok {
				out[i].IDs[j] = to
				changed = true
			}
		}
	}
	return out, changed
}
