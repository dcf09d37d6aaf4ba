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

// conditioning encodes the request's prompts into the UNet context: with
// guidance [2B, T, D] = cat(uncond x B, cond x B) (CompVis's order), else
// [B, T, D] of the prompt. With a Request.Edit it also returns the edit's
// K/V editor (nil without).
func (p *Pipeline) conditioning(ctx context.Context, r Request, b int, guided bool) (tensor.Tensor, unet.KVEditor, error) {
	opt := r.text()
	if r.Edit != nil {
		opt.Words, opt.Embeddings = r.Edit.Words()
	}
	encs, err := p.EncodePrompts(ctx, []string{r.Negative, r.Prompt}, opt)
	if err != nil {
		return tensor.Tensor{}, nil, err
	}
	p.trace.emit("uncond_embedding", 0, encs[0].Hidden.Data())
	p.trace.emit("cond_embedding", 0, encs[1].Hidden.Data())
	// rows lists the encoding of each UNet row: 0 uncond, 1 cond.
	rows := make([]int, 0, 2*b)
	if guided {
		for range b {
			rows = append(rows, 0)
		}
	}
	for range b {
		rows = append(rows, 1)
	}
	cond, err := stackRows(encs, rows)
	if err != nil || r.Edit == nil {
		return cond, nil, err
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
	_, extra, err := p.words(opt)
	if err != nil {
		return tensor.Tensor{}, nil, err
	}
	c.reencode = func(ctx context.Context, replace map[int]int) (tensor.Tensor, error) {
		re := append([]Encoding(nil), encs...)
		for i, e := range encs {
			chunks, changed := replaceIDs(e.Chunks, replace)
			if !changed {
				continue
			}
			out, err := p.encodeChunks(ctx, [][]tokenizer.Chunk{chunks}, opt.ClipSkip, extra)
			if err != nil {
				return tensor.Tensor{}, err
			}
			re[i] = out[0]
		}
		return stackRows(re, rows)
	}
	ed, err := r.Edit.Editor(ctx, c)
	if err != nil {
		return tensor.Tensor{}, nil, fmt.Errorf("pipeline: conditioning edit: %w", err)
	}
	return cond, ed, nil
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
