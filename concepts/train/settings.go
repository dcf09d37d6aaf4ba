package train

import (
	"fmt"
	"math"
)

// Preset names.
const (
	Quick = "quick" // a CPU laptop: 256 px, cached latents, a few hundred samples
	Paper = "paper" // the paper's recipe: 512 px, 400 steps, batch 16
)

// Settings are a training run's hyper-parameters (spec §6.1). Start from
// a preset (PresetSettings) and change what you need.
type Settings struct {
	Preset string // the preset these started from, for the record

	Size  int // training image side in pixels (a multiple of the model's SizeMultiple)
	Steps int // optimizer steps
	Batch int // samples per optimizer step (the effective batch)
	// Micro is the samples per forward/backward pass; Batch/Micro passes
	// are accumulated per step (gradient accumulation). It bounds memory.
	Micro int

	LREmbedding float64 // AdamW learning rate of the word embedding (0.006)
	LRValues    float64 // AdamW learning rate of o*_V (0.03)
	WeightDecay float64 // AdamW decoupled weight decay (0.01, torch's default)
	Beta1       float64 // AdamW (0.9)
	Beta2       float64 // AdamW (0.999)
	Eps         float64 // AdamW (1e-8)

	GateBeta float32 // training gate bias β (0.75)
	GateTau  float32 // training gate temperature τ (0.1)
	EMA      float64 // i* EMA decay (0.99)

	Flip bool // add mirrored copies of the photos
	// Templates are the training prompts, "{}" where the word goes (nil:
	// the package's Templates; PresetFor gives small models
	// WordFirstTemplates).
	Templates []string
	// MaskFloor is the least loss weight of a pixel outside the mask
	// (spec §6.4: w = max(m/max(m), MaskFloor)); used only with masks.
	MaskFloor float64
	// AttentionMask derives the loss weights of each photo that has no
	// given mask from the base model's cross-attention to the
	// superordinate word (one UNet pass per view; see attentionMask).
	AttentionMask bool

	// Recompute chooses activation recomputation for the UNet's backward
	// pass (see RecomputeMode); the zero value decides by size.
	Recompute RecomputeMode

	Seed uint64 // seeds photos order, timesteps and noise
	// CheckpointEvery writes the resume file every this many steps (0:
	// DefaultCheckpointEvery).
	CheckpointEvery int
}

// RecomputeMode says whether a training pass keeps the UNet's activations
// for backward or recomputes them block by block (unet.Call.Recompute:
// each input, middle and output block runs forward without its graph and
// again, with it, during backward). Recomputation costs about one more
// UNet forward per pass and holds one block's graph at a time instead of
// all of them; the gradients are the same to float rounding.
type RecomputeMode int

const (
	// RecomputeAuto recomputes above RecomputeAbovePixels pixels per
	// pass (Micro × Size²): the Paper preset's four 512×512 samples per
	// pass, where SD1.5's graph would hold about 10 GB, and not one
	// 512×512 sample per pass nor the Quick preset's one 256×256 sample
	// (SD1.5 keeps its activations within 4.6 GB there, and a sample
	// costs about one UNet forward less) nor the small sizes of tests.
	RecomputeAuto RecomputeMode = iota
	RecomputeOn                 // always recompute
	RecomputeOff                // keep every activation (fastest, most memory)
)

// RecomputeAbovePixels is where RecomputeAuto starts recomputing: above
// one 512×512 sample per pass. Measured on SD1.5's shapes from a float16
// checkpoint (perfusion bench --train): at 512 px a sample that keeps its
// activations peaks at 4.5 GB RSS (the 6 GB budget) and costs about 2.5
// UNet forwards, one that recomputes them 3.3–3.6 forwards. (It peaked at
// 6.3 GB before each operator dropped its result's gradient after its
// backward pass: see ops.Run.)
const RecomputeAbovePixels = 512 * 512

// Recomputes reports whether a run with s recomputes activations.
func (s Settings) Recomputes() bool {
	switch s.Recompute {
	case RecomputeOn:
		return true
	case RecomputeOff:
		return false
	}
	return s.Micro*s.Size*s.Size > RecomputeAbovePixels
}

// DefaultCheckpointEvery is how often a run saves its resume file.
const DefaultCheckpointEvery = 10

// PresetSettings returns the settings of a preset ("" is Quick) for an
// SD1.x model (trained at 512 px): PresetFor(name, 512).
func PresetSettings(name string) (Settings, error) { return PresetFor(name, 512) }

// PresetFor returns the settings of a preset ("" is Quick) for a model
// whose native image side is nativeSize pixels (pipeline.NativeSize): the
// preset's size is capped at it, so a small model (the 32-px default
// model) trains at its own size: Quick at min(256, native), Paper at
// min(512, native). Steps and batches stay the preset's. A model below
// SmallModelSide also trains on WordFirstTemplates instead of Templates.
// nativeSize <= 0 means unknown and leaves the preset's sizes and
// templates (as for SD1.x).
func PresetFor(name string, nativeSize int) (Settings, error) {
	s := Settings{
		LREmbedding: 0.006, LRValues: 0.03, WeightDecay: 0.01,
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		GateBeta: 0.75, GateTau: 0.1, EMA: 0.99,
		Flip: true, MaskFloor: 0.05, Seed: 1,
	}
	switch name {
	case Quick, "":
		s.Preset, s.Size, s.Steps, s.Batch, s.Micro = Quick, 256, 150, 2, 1
	case Paper:
		s.Preset, s.Size, s.Steps, s.Batch, s.Micro = Paper, 512, 400, 16, 4
	default:
		return Settings{}, fmt.Errorf("train: unknown preset %q (want %q or %q)", name, Quick, Paper)
	}
	if nativeSize > 0 {
		s.Size = min(s.Size, nativeSize)
	}
	if nativeSize > 0 && nativeSize < SmallModelSide {
		s.Templates = WordFirstTemplates()
	}
	return s, nil
}

// SmallModelSide is the native image side below which PresetFor takes a
// model for a small one trained on its own short captions (the 32-px
// default emoji model), not on the web's alt texts as SD1.x was.
const SmallModelSide = 256

// WordFirstTemplates returns the training prompts PresetFor gives small
// models: the bare word. A small model's text encoder knows only its own
// captions, which name the subject first ("<name> on a <colour>
// background"); it encodes a word after "a photo of a", which it never
// saw, unlike the same word at a prompt's start (the default model:
// C⁻¹-similarity 0.03 between "dog" there and the i* learned from
// Templates), so the gate of a "<concept> …" prompt stays almost shut
// (s = 0.56 against β = 0.7). The encoder is causal, so a word first in
// a prompt has the same encoding whatever follows: trained on "{}", i* is
// the encoding every prompt that starts with the concept gives.
func WordFirstTemplates() []string { return []string{"{}"} }

// Limits on settings.
const (
	MaxSteps = 100000
	MaxBatch = 64
	MaxSize  = 1024
)

// Check explains what is wrong with s; mult is the model's image size
// multiple.
func (s Settings) Check(mult int) error {
	pos := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	switch {
	case s.Size <= 0 || s.Size > MaxSize:
		return fmt.Errorf("train: size %d px: want 1 to %d", s.Size, MaxSize)
	case mult > 0 && s.Size%mult != 0:
		return fmt.Errorf("train: size %d px is not a multiple of %d; try %d", s.Size, mult, max(mult, s.Size/mult*mult))
	case s.Steps <= 0 || s.Steps > MaxSteps:
		return fmt.Errorf("train: %d steps: want 1 to %d", s.Steps, MaxSteps)
	case s.Batch <= 0 || s.Batch > MaxBatch:
		return fmt.Errorf("train: batch %d: want 1 to %d", s.Batch, MaxBatch)
	case s.Micro <= 0 || s.Batch%s.Micro != 0:
		return fmt.Errorf("train: micro-batch %d must divide the batch %d", s.Micro, s.Batch)
	case !pos(s.LREmbedding) || !pos(s.LRValues):
		return fmt.Errorf("train: learning rates %g, %g must be positive", s.LREmbedding, s.LRValues)
	case !(s.WeightDecay >= 0) || !(s.Beta1 >= 0 && s.Beta1 < 1) || !(s.Beta2 >= 0 && s.Beta2 < 1) || !pos(s.Eps):
		return fmt.Errorf("train: AdamW settings out of range (decay %g, betas %g, %g, eps %g)", s.WeightDecay, s.Beta1, s.Beta2, s.Eps)
	case !(s.GateTau > 0) || math.IsNaN(float64(s.GateBeta)) || math.IsInf(float64(s.GateBeta), 0):
		return fmt.Errorf("train: gate beta %g, tau %g: want tau > 0", s.GateBeta, s.GateTau)
	case !(s.EMA >= 0 && s.EMA < 1):
		return fmt.Errorf("train: i* EMA decay %g: want 0 to below 1", s.EMA)
	case !(s.MaskFloor >= 0 && s.MaskFloor <= 1):
		return fmt.Errorf("train: mask floor %g: want 0 to 1", s.MaskFloor)
	case s.Recompute < RecomputeAuto || s.Recompute > RecomputeOff:
		return fmt.Errorf("train: unknown recompute mode %d", s.Recompute)
	case s.CheckpointEvery < 0:
		return fmt.Errorf("train: checkpoint interval %d is negative", s.CheckpointEvery)
	}
	return nil
}

// TrainingTemplates returns the training prompts: s.Templates, or
// Templates when it has none.
func (s Settings) TrainingTemplates() []string {
	if len(s.Templates) > 0 {
		return s.Templates
	}
	return Templates
}

// Samples is the number of training samples the run draws.
func (s Settings) Samples() int { return s.Steps * s.Batch }
