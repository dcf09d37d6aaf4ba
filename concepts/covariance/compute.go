// Package covariance computes C, the uncentered second moment of the text
// encodings that cross-attention sees (PERFUSION.md §4, golden README:
// C = (1/n_captions) Σ over captions and all 77 tokens of e eᵀ), from the
// project's caption corpus (concepts/captions), accumulated and factored
// (Cholesky) in float64, and caches it on disk keyed by a hash of the
// text-encoder weights and of the corpus. Covariance.MulInverse gives C⁻¹v,
// the metric of Perfusion's gate.
//
// Legend: N captions, T tokens per caption (77), D encoding width.
package covariance

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// MethodVersion changes when the way C is computed changes (tokens
// included, normalisation, ...), so cached matrices of older methods are
// not used.
const MethodVersion = 1

// Encoder is the text encoder C is estimated for.
type Encoder interface {
	// Width is D.
	Width() int
	// Encode returns the encodings [len(ids), T, D] (row-major) of rows of
	// token ids, each row one caption of T ids.
	Encode(ctx context.Context, ids [][]int) ([]float32, error)
}

// Tokenizer lays a caption out as the text encoder gets it (SD1.5: BOS,
// up to 75 ids, EOS, EOS padding to 77); *tokenizer.Tokenizer is one.
type Tokenizer interface {
	IDs77(text string) []int
}

// Progress reports how far Compute is.
type Progress struct {
	Done, Total int           // captions encoded and accumulated
	Elapsed     time.Duration // since the start
	ETA         time.Duration // estimated time left (0 until the first batch)
}

// Options tune Compute. The zero value works.
type Options struct {
	Batch    int            // captions per Encode call (default 8)
	Workers  int            // accumulation goroutines (default GOMAXPROCS)
	Progress func(Progress) // called after every batch, on Compute's goroutine
}

// Compute encodes every caption and returns the factored C. It stops with
// ctx's error once ctx is done (checked between batches).
func Compute(ctx context.Context, captions []string, tok Tokenizer, enc Encoder, opt Options) (*Covariance, error) {
	if len(captions) == 0 {
		return nil, fmt.Errorf("covariance: no captions")
	}
	batch := opt.Batch
	if batch <= 0 {
		batch = 8
	}
	acc, err := NewAccumulator(enc.Width(), opt.Workers)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for lo := 0; lo < len(captions); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+batch, len(captions))
		ids := make([][]int, 0, hi-lo)
		for _, c := range captions[lo:hi] {
			ids = append(ids, tok.IDs77(c))
		}
		e, err := enc.Encode(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("covariance: encode captions %d-%d: %w", lo, hi-1, err)
		}
		if t := len(ids[0]); len(e) != len(ids)*t*enc.Width() {
			return nil, fmt.Errorf("covariance: encoder gave %d values for %d captions of %d tokens × %d", len(e), len(ids), t, enc.Width())
		}
		if err := acc.Add(e, len(ids)); err != nil {
			return nil, err
		}
		if opt.Progress != nil {
			el := time.Since(start)
			opt.Progress(Progress{Done: hi, Total: len(captions), Elapsed: el,
				ETA: time.Duration(float64(el) / float64(hi) * float64(len(captions)-hi))})
		}
	}
	return FromAccumulator(acc)
}

// CLIPEncoder encodes with a loaded CLIP text model: the last layer after
// the final LayerNorm (SD1.5's conditioning), what cross-attention sees.
type CLIPEncoder struct{ Model *clip.Model }

// Width is the model's hidden size.
func (e CLIPEncoder) Width() int { return e.Model.Config.HiddenSize }

// Encode runs the text encoder on the rows of ids.
func (e CLIPEncoder) Encode(ctx context.Context, ids [][]int) ([]float32, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := len(ids[0])
	flat := make([]int, 0, len(ids)*t)
	for _, r := range ids {
		if len(r) != t {
			return nil, fmt.Errorf("covariance: rows of %d and %d ids", t, len(r))
		}
		flat = append(flat, r...)
	}
	out, err := e.Model.Forward(flat, len(ids))
	if err != nil {
		return nil, err
	}
	return out.Data(), nil // [B, T, D]
}

// Key names the C computed by this method from one text encoder (the hash
// of its weights, see WeightsHash) and one corpus (captions.Hash). Concept
// files record it: concepts combined in one prompt must share C.
func Key(encoderHash, corpusHash string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("perfusion covariance method %d\nencoder %s\ncorpus %s\n", MethodVersion, encoderHash, corpusHash)))
	return hex.EncodeToString(h[:8])
}

// WeightsHash is a hex SHA-256 (first 16 digits) of the text-encoder
// tensors of src under prefix (clip.Prefix for SD checkpoints): names,
// shapes and float32 values, so the same weights hash alike in a
// float32 safetensors file, a .ckpt or a diffusers folder, and float16
// weights hash as the float32 values they convert to. The position-id
// buffer some checkpoints carry is skipped. It stops with ctx's error.
func WeightsHash(ctx context.Context, src weights.Source, prefix string) (string, error) {
	h := sha256.New()
	n := 0
	var buf []byte
	for _, name := range src.Names() {
		if !strings.HasPrefix(name, prefix) || strings.HasSuffix(name, "position_ids") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		v, shape, err := src.Float32(name)
		if err != nil {
			return "", fmt.Errorf("covariance: hash %s: %w", name, err)
		}
		fmt.Fprintf(h, "%s %v\n", strings.TrimPrefix(name, prefix), shape)
		for lo := 0; lo < len(v); lo += 1 << 16 {
			buf = buf[:0]
			for _, x := range v[lo:min(len(v), lo+1<<16)] {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
			}
			h.Write(buf)
		}
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("covariance: no text-encoder tensors under %q", prefix)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
