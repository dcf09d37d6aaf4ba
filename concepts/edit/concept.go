package edit

import (
	"fmt"
	"math"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Concept is what the edit needs of one trained concept (spec §5): its
// placeholder word and word embedding, its target input i*, per layer its
// key and value targets, and its gate's bias and temperature.
type Concept struct {
	// Name labels the concept in errors.
	Name string
	// Word is the placeholder as written in prompts ("<tubby>").
	Word string
	// Embedding is the word's input embedding [D] (it may require
	// gradients in training).
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
