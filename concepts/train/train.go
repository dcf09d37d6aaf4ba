// Package train teaches a frozen Stable Diffusion 1.x model a Perfusion
// concept from a few photos (Tewel et al., "Key-Locked Rank One Editing
// for Text-to-Image Personalization", SIGGRAPH 2023), following the loop of
// ../../shared spec §6.3: random prompt templates holding the concept
// word, random timesteps and Gaussian noise on cached VAE latents, the
// ε-prediction MSE (optionally mask-weighted, §6.4), i* kept as an EMA of
// the concept word's encodings, keys locked to the superordinate word, and
// AdamW on the word embedding and the per-layer value targets o*_V only.
// Gradients flow through the frozen UNet and text encoder; no weight
// gradient is ever computed.
//
// A run reports progress, stops on its context, saves a resume file every
// few steps (and on cancel) and continues from it, and checks its result
// before returning it (Result.Check).
//
// Legend: B samples per pass (Settings.Micro), T context tokens (77), D
// text width, C latent channels, h, w latent size, O a layer's width.
package train

import (
	"context"
	"errors"
	"fmt"
	"image"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/photos"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// Job is one training run.
type Job struct {
	Pipeline *pipeline.Pipeline // the base model (read only)
	Name     string             // the concept's name (for the record)
	Class    string             // the superordinate word: one CLIP token
	Photos   []photos.Photo     // 1 to photos.MaxPhotos
	// Masks, when set, has one entry per photo (nil: none for that photo):
	// a grey-level image, white where the subject is, in the photo's
	// upright pixels, cropped like the photo. Loss weights outside the
	// subject fall to Settings.MaskFloor.
	Masks    []image.Image
	Metric   edit.Metric // C⁻¹ of the base text encoder
	Settings Settings
	// Resume is the resume file: read at the start when it exists and
	// belongs to this job (the same model, photos, word and settings but
	// for Steps: more steps continue a finished run), written atomically
	// every Settings.CheckpointEvery steps, on cancel and at the end, and
	// left in place (remove it once the concept is saved). "" keeps no
	// file.
	Resume string
	// Progress, when set, is called after every stage step and every
	// training step.
	Progress func(Progress)
}

// Stages of a run, as Progress.Stage reports them.
const (
	StagePhotos  = "photos"  // decoding and cropping the photos
	StageLatents = "latents" // encoding each view with the VAE
	StageMask    = "mask"    // deriving loss masks from the model's attention
	StageTrain   = "train"   // optimizer steps
	StageCheck   = "check"   // the self-check renders
)

// Progress reports a run's advance.
type Progress struct {
	Stage       string
	Step, Total int     // 1-based within the stage
	Loss        float64 // the last training step's loss (StageTrain)
	Elapsed     time.Duration
	ETA         time.Duration // of the stage
	Resumed     int           // the step a resumed run started from
	// Snapshot, set for StageTrain only, returns a copy of the concept as
	// it stands after this step (for samples while it trains). Call it
	// within the Progress callback: the run goes on once that returns.
	Snapshot func() *Trained
}

// Trained is a trained concept: what a concept file holds.
type Trained struct {
	Name            string
	Superclass      string
	SuperclassToken int
	Embedding       []float32 // the concept word's input embedding [D]
	TargetInput     []float32 // i* [D], the final EMA value
	Layers          []Layer   // every cross-attention layer, in UNet order
	Settings        Settings
}

// Layer holds one cross-attention layer's targets.
type Layer struct {
	Name string    // unet.CrossAttention.Name
	OutK []float32 // o*_K = W_K ē_super, locked [O]
	OutV []float32 // o*_V, learned [O]
}

// Result is a finished, checked run.
type Result struct {
	Concept *Trained
	Losses  []float64 // per optimizer step
	Check   Check
	Elapsed time.Duration
}

// ErrNotLearned is wrapped by the error of a run whose concept failed the
// self-check; the Result is returned alongside it.
var ErrNotLearned = errors.New("train: the concept learned nothing usable")

// Run trains the concept of job. On cancel it saves the resume file (when
// set) and returns ctx.Err(). A concept that fails the self-check is
// returned with an error wrapping ErrNotLearned that says what to try.
func Run(ctx context.Context, job Job) (*Result, error) {
	start := time.Now()
	if err := conceptfile.ValidName(job.Name); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	tr, err := newTrainer(ctx, job, start)
	if err != nil {
		return nil, err
	}
	if err := tr.loop(ctx); err != nil {
		if ctx.Err() != nil {
			if serr := tr.save(); serr != nil {
				return nil, fmt.Errorf("%w (and the resume file could not be saved: %v)", ctx.Err(), serr)
			}
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := tr.save(); err != nil {
		return nil, err
	}
	chk, err := tr.selfCheck(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Concept: tr.trained(), Losses: append([]float64(nil), tr.st.Losses...), Check: chk, Elapsed: time.Since(start)}
	if why := chk.problem(); why != "" {
		return res, fmt.Errorf("%w: %s", ErrNotLearned, why)
	}
	return res, nil
}
