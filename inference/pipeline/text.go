package pipeline

import (
	"context"
	"fmt"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
)

// TextOptions select how prompts become conditioning. The zero value is
// plain SD1.5 (CompVis FrozenCLIPEmbedder): the last layer, no emphasis
// syntax, prompts truncated to 75 tokens.
type TextOptions struct {
	// ClipSkip picks the text encoder layer: 0 or 1 the last, 2 the
	// penultimate, ... (the web UI's "Clip skip"; see clip.Options).
	ClipSkip int
	// Emphasis parses the web UI's attention syntax ("(word:1.3)",
	// "[word]", BREAK; see tokenizer.Options) and applies the weights to
	// the encoding as the web UI does (see applyEmphasis).
	Emphasis bool
	// LongPrompts splits prompts longer than 75 tokens into chunks of 77
	// ids, encodes each chunk separately and concatenates the encodings
	// along the tokens (the web UI's behaviour); false truncates.
	LongPrompts bool
	// Words are words added for this call (Perfusion placeholders such as
	// "<tubby>"), and Embeddings [len(Words), D] their input embeddings:
	// Words[i] is token id VocabSize+i of the text encoder. The shared
	// tokenizer and text encoder are not changed.
	Words      []string
	Embeddings tensor.Tensor
	// Cache, when set, keeps the encodings for later calls with the same
	// prompts and options (see EncodingCache); results are the same bits.
	Cache *EncodingCache
}

// words returns the tokenizer's per-call words and the text encoder's
// extra table of opt, checked.
func (p *Pipeline) words(opt TextOptions) (map[string]int, tensor.Tensor, error) {
	if len(opt.Words) == 0 {
		return nil, tensor.Tensor{}, nil
	}
	d, v := p.CLIP.Config.HiddenSize, p.CLIP.Config.VocabSize
	e := opt.Embeddings
	if !e.Valid() || e.Rank() != 2 || e.Dim(0) != len(opt.Words) || e.Dim(1) != d {
		return nil, tensor.Tensor{}, fmt.Errorf("pipeline: %d added words with embeddings %v, want [%d, %d]", len(opt.Words), e, len(opt.Words), d)
	}
	m := make(map[string]int, len(opt.Words))
	for i, w := range opt.Words {
		if _, dup := m[w]; dup {
			return nil, tensor.Tensor{}, fmt.Errorf("pipeline: word %q added twice", w)
		}
		m[w] = v + i
	}
	return m, e, nil
}

// Encoding is the conditioning of one prompt.
type Encoding struct {
	Chunks []tokenizer.Chunk // the token ids and emphasis weights, 77 per chunk
	Hidden tensor.Tensor     // [1, 77*len(Chunks), D]
}

// EncodePrompts encodes prompts in one text-encoder batch. Every encoding
// has the same number of chunks, so that they can be batched together (the
// negative prompt with the prompt): a prompt with fewer chunks is padded
// with chunks of the empty prompt, as the web UI pads the shorter of the
// prompt and the negative prompt (pad_cond with its empty-prompt encoding).
func (p *Pipeline) EncodePrompts(ctx context.Context, prompts []string, opt TextOptions) ([]Encoding, error) {
	if len(prompts) == 0 {
		return nil, nil
	}
	if c := p.CLIP.Config; opt.ClipSkip < 0 || opt.ClipSkip > c.NumLayers {
		return nil, fmt.Errorf("pipeline: clip skip %d: want 0 to %d (the text encoder has %d layers)", opt.ClipSkip, c.NumLayers, c.NumLayers)
	}
	words, extra, err := p.words(opt)
	if err != nil {
		return nil, err
	}
	topt := tokenizer.Options{Emphasis: opt.Emphasis, Chunks: opt.LongPrompts, Words: words}
	per := make([][]tokenizer.Chunk, len(prompts))
	n := 1
	for i, text := range prompts {
		cs, err := p.Tokenizer.Prompt(text, topt)
		if err != nil {
			return nil, fmt.Errorf("pipeline: prompt %q: %w", text, err)
		}
		per[i] = cs
		n = max(n, len(cs))
	}
	if n*tokenizer.ContextLen > maxContextTokens {
		return nil, fmt.Errorf("pipeline: prompt of %d chunks (%d tokens) is too long: at most %d chunks", n, n*tokenizer.ContextLen, maxContextTokens/tokenizer.ContextLen)
	}
	empty, err := p.Tokenizer.Prompt("", tokenizer.Options{})
	if err != nil {
		return nil, fmt.Errorf("pipeline: empty prompt: %w", err)
	}
	for i := range per {
		for len(per[i]) < n {
			per[i] = append(per[i], empty[0])
		}
	}
	return p.encodeChunks(ctx, per, opt.ClipSkip, extra, opt.Cache)
}

// encodeChunks encodes prompts already tokenized into the same number of
// chunks each, with the extra word embeddings extra (may be the zero
// Tensor), and applies their emphasis weights. With a cache, a batch
// encoded before is taken from it.
func (p *Pipeline) encodeChunks(ctx context.Context, per [][]tokenizer.Chunk, clipSkip int, extra tensor.Tensor, cache *EncodingCache) ([]Encoding, error) {
	if cache == nil {
		return p.encodeChunksNow(ctx, per, clipSkip, extra)
	}
	key := encodingKey(per, clipSkip, extra)
	if encs, ok := cache.get(p, key); ok {
		return encs, nil
	}
	encs, err := p.encodeChunksNow(ctx, per, clipSkip, extra)
	if err == nil {
		cache.put(p, key, encs)
	}
	return encs, err
}

// encodeChunksNow is encodeChunks without a cache: it runs the text
// encoder.
func (p *Pipeline) encodeChunksNow(ctx context.Context, per [][]tokenizer.Chunk, clipSkip int, extra tensor.Tensor) ([]Encoding, error) {
	n := len(per[0])
	ids := make([]int, 0, len(per)*n*tokenizer.ContextLen)
	for i := range per {
		if len(per[i]) != n {
			return nil, fmt.Errorf("pipeline: prompts of %d and %d chunks in one batch", n, len(per[i]))
		}
		for _, c := range per[i] {
			ids = append(ids, c.IDs[:]...)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := p.CLIP.ForwardWith(ids, len(per)*n, clip.Options{ClipSkip: clipSkip, Extra: extra})
	if err != nil {
		return nil, fmt.Errorf("pipeline: encode prompts: %w", err)
	}
	z := res.Out.Data() // [P*n, 77, D]
	d := p.CLIP.Config.HiddenSize
	chunkLen := tokenizer.ContextLen * d
	out := make([]Encoding, len(per))
	for i := range per {
		data := make([]float32, n*chunkLen)
		copy(data, z[i*n*chunkLen:])
		for j, c := range per[i] {
			applyEmphasis(data[j*chunkLen:(j+1)*chunkLen], c.Weights[:], d)
		}
		h, err := tensor.New(data, 1, n*tokenizer.ContextLen, d) // [1, n*77, D]
		if err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
		out[i] = Encoding{Chunks: per[i], Hidden: h}
	}
	return out, nil
}

// maxContextTokens bounds the conditioning length (the web UI has no hard
// limit; 20 chunks = 1500 prompt tokens is far past any real prompt).
const maxContextTokens = 20 * tokenizer.ContextLen

// applyEmphasis applies emphasis weights to one chunk's encoding z [77, D]
// as the web UI does (sd_hijack_clip.py, process_tokens): each token's row
// is multiplied by its weight, then the whole chunk is rescaled so that its
// mean equals the mean before weighting. All-1 weights leave z untouched.
func applyEmphasis(z, w []float32, d int) {
	plain := true
	for _, v := range w {
		if v != 1 {
			plain = false
			break
		}
	}
	if plain {
		return
	}
	before := mean(z)
	for t, v := range w {
		row := z[t*d : (t+1)*d]
		for j := range row {
			row[j] *= v
		}
	}
	after := mean(z)
	if after == 0 {
		return // degenerate: the web UI would divide by zero here
	}
	scale := float32(before / after)
	for j := range z {
		z[j] *= scale
	}
}

// mean is the average of v, accumulated in float64.
func mean(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}
