package edit

import (
	"fmt"
	"math"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// Concept is what the edit needs of one trained concept (spec §5): its
// placeholder word and word embedding, its target input i*, per layer its
// key and value targets, and its gate's bias and temperature.
type Concept struct {
	// Name labels the concept in errors.
	Name string
	// Word is the placeholder as written in prompts ("<tubby>").
	Word string
	// Embedding is the word's input embedding [D] or [1, D] (it may
	// require gradients in training, given to the text encoder through
	// clip.Options.Extra).
	Embedding tensor.Tensor
	// Input is the target input i* [D], a text encoding.
	Input []float32
	// Superclass is the superordinate word (one CLIP token), for global
	// key locking.
	Superclass string
	// Beta and Tau are the gate's bias and temperature (τ > 0); inference
	// defaults are 0.7 and 0.15, training uses 0.75 and 0.1.
	Beta, Tau float32
	// Layers holds the targets of every cross-attention layer, by its name
	// (unet.CrossAttention.Name, e.g.
	// "input_blocks.1.1.transformer_blocks.0.attn2").
	Layers map[string]Targets
}

// Targets are one layer's key and value targets: one vector [O] (what a
// concept stores) or one row per context position [T, O]. V may require
// gradients (training); K is locked to the superclass key and never does.
type Targets struct {
	K, V tensor.Tensor
}

// Defaults of the gate (spec §6.1, §7).
const (
	InferenceBeta = 0.7
	InferenceTau  = 0.15
	TrainBeta     = 0.75
	TrainTau      = 0.1
)

// check explains what is wrong with c for a context of width d.
func (c *Concept) check(d int) error {
	if len(c.Input) != d {
		return fmt.Errorf("edit: concept %q: i* has %d values, want %d (the text width)", c.Name, len(c.Input), d)
	}
	if !(c.Tau > 0) || math.IsInf(float64(c.Tau), 0) || math.IsNaN(float64(c.Beta)) || math.IsInf(float64(c.Beta), 0) {
		return fmt.Errorf("edit: concept %q: beta %g, tau %g: want a finite beta and a finite tau > 0", c.Name, c.Beta, c.Tau)
	}
	if len(c.Layers) == 0 {
		return fmt.Errorf("edit: concept %q has no layer targets", c.Name)
	}
	return nil
}

// InitTargets returns the starting targets of a concept (spec §6.3): for
// every cross-attention layer, o*_K = W_K ē and o*_V = W_V ē, where ē [D]
// is the superclass word's encoding (averaged over the training prompts).
// K stays fixed (the key lock); V is where training starts. The sums are
// taken in float64.
func InitTargets(layers []unet.CrossAttention, super []float32) (map[string]Targets, error) {
	out := make(map[string]Targets, len(layers))
	for _, l := range layers {
		k, err := matVec32(l.ToK, super)
		if err != nil {
			return nil, fmt.Errorf("edit: %s.to_k: %w", l.Name, err)
		}
		v, err := matVec32(l.ToV, super)
		if err != nil {
			return nil, fmt.Errorf("edit: %s.to_v: %w", l.Name, err)
		}
		out[l.Name] = Targets{K: k, V: v}
	}
	return out, nil
}

// matVec32 is w [O, D] times x [D] as a tensor [O].
func matVec32(w tensor.Tensor, x []float32) (tensor.Tensor, error) {
	if !w.Valid() || w.Rank() != 2 || w.Dim(1) != len(x) {
		return tensor.Tensor{}, fmt.Errorf("weight %v for an encoding of %d values", w, len(x))
	}
	o, d, data := w.Dim(0), w.Dim(1), w.Data()
	y := make([]float32, o)
	for i := range y {
		y[i] = float32(dot64(data[i*d:(i+1)*d], x))
	}
	return tensor.New(y, o)
}
