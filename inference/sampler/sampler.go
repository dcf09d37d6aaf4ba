// Package sampler holds the diffusion samplers of Stable Diffusion 1.x as pure
// math on plain []float32 latents: the noise schedule (schedule.go), DDIM,
// the k-diffusion family (Euler, Euler ancestral, DPM++ 2M, with normal or
// Karras noise levels) and LCM, one file each, plus classifier-free guidance
// (cfg.go). Samplers know nothing of UNets or prompts: the model is an
// EpsFunc that returns the noise prediction eps for a latent at a model
// timestep t.
//
// Legend: a latent x is one flattened [B, C, H, W] tensor; every slice a
// sampler takes or returns has that length. T is the number of training
// timesteps (1000 for SD1.x), N the number of sampling steps.
//
// The formulas follow the reference implementations of the golden vectors
// (CompVis/stable-diffusion DDIMSampler, crowsonkb/k-diffusion with
// CompVisDenoiser, diffusers' LCMScheduler), including their float32 and
// float64 choices.
package sampler

import (
	"context"
	"fmt"
	"strings"
)

// Sampler is one sampling method over a fixed schedule of N steps. A Sampler
// holds the state of one run (DPM++ 2M's previous estimate, the ancestral
// noise source): make a new one per image, and call Step for i = 0..N-1 in
// order. For step i the model is evaluated at Timesteps()[i] on
// ScaleInput(x, i), and Step turns its eps into the next latent.
type Sampler interface {
	// Timesteps is the model timestep t of each step, length N.
	Timesteps() []float64
	// InitNoiseSigma is the scale of the starting latent: x_N = sigma * x_T
	// for unit-variance noise x_T.
	InitNoiseSigma() float64
	// ScaleInput returns the model input for step i (a new slice).
	ScaleInput(x []float32, i int) []float32
	// Step takes the latent x of step i and the model's eps on it, and returns
	// the next latent and the current estimate of the clean latent (pred_x0 /
	// denoised), both new slices.
	Step(i int, x, eps []float32) (next, denoised []float32, err error)
	// AddNoise noises a clean latent x0 to the level step i expects as its
	// input, for starting part-way (img2img); noise is unit variance.
	AddNoise(x0, noise []float32, i int) []float32
}

// KSampler is a sampler of the k-diffusion family (Karras et al. 2022,
// "Elucidating the Design Space of Diffusion-Based Generative Models",
// arXiv:2206.00364), which steps on the denoiser output D(x, sigma) =
// x - sigma*eps. Step derives D from eps; StepDenoised takes D directly, for
// models that are denoisers.
type KSampler interface {
	Sampler
	// Sigmas is the noise level of each step plus a final 0, length N+1.
	Sigmas() []float64
	// StepDenoised is Step given D(x, Sigmas()[i]) instead of eps.
	StepDenoised(i int, x, denoised []float32) ([]float32, error)
}

// EpsFunc is the model: the noise prediction eps for latent x at model
// timestep t. Classifier-free guidance happens inside it (see CFG).
type EpsFunc func(ctx context.Context, x []float32, t float64) ([]float32, error)

// Progress is called after each step with the 1-based step number, the step
// count, the new latent and the current clean-latent estimate. It must not
// keep or modify the slices past the call.
type Progress func(step, total int, x, denoised []float32)

// Sample runs all steps of s from unit-variance noise xT (which it does not
// modify), scaled by s.InitNoiseSigma(), and returns the final latent. It
// checks ctx before each step and returns ctx.Err() once it is cancelled.
// progress may be nil.
func Sample(ctx context.Context, s Sampler, model EpsFunc, xT []float32, progress Progress) ([]float32, error) {
	x := make([]float32, len(xT))
	sigma := float32(s.InitNoiseSigma())
	for j, v := range xT {
		x[j] = v * sigma
	}
	return Denoise(ctx, s, model, x, 0, progress)
}

// Denoise runs steps from..N-1 of s on a latent x already at the noise level
// of step from (see AddNoise), as Sample does from step 0.
func Denoise(ctx context.Context, s Sampler, model EpsFunc, x []float32, from int, progress Progress) ([]float32, error) {
	ts := s.Timesteps()
	if from < 0 || from > len(ts) {
		return nil, fmt.Errorf("sampler: start step %d outside 0..%d", from, len(ts))
	}
	for i := from; i < len(ts); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		eps, err := model(ctx, s.ScaleInput(x, i), ts[i])
		if err != nil {
			return nil, fmt.Errorf("sampler: step %d of %d (t=%g): %w", i+1, len(ts), ts[i], err)
		}
		next, denoised, err := s.Step(i, x, eps)
		if err != nil {
			return nil, err
		}
		x = next
		if progress != nil {
			progress(i+1, len(ts), x, denoised)
		}
	}
	return x, nil
}

// constructor builds a sampler of N steps; noise is its source of fresh unit
// normals (n values per call), used only by the stochastic samplers.
type constructor func(sched *Schedule, steps int, noise func(n int) []float32) (Sampler, error)

// registry lists the samplers by name, in the order Names reports them.
func registry() []struct {
	name string
	new  constructor
} {
	return []struct {
		name string
		new  constructor
	}{
		{"ddim", newDDIM},
		{"euler", newEuler},
		{"euler_a", newEulerAncestral},
		{"euler_karras", newEulerKarras},
		{"dpmpp_2m", newDPMPP2M},
		{"dpmpp_2m_karras", newDPMPP2MKarras},
		{"lcm", newLCM},
	}
}

// Names lists the sampler names New accepts.
func Names() []string {
	var names []string
	for _, r := range registry() {
		names = append(names, r.name)
	}
	return names
}

// New builds the named sampler with N = steps steps on sched. noise supplies
// fresh unit normals for the stochastic samplers ("euler_a", "lcm"); it may
// be nil for the others.
func New(name string, sched *Schedule, steps int, noise func(n int) []float32) (Sampler, error) {
	if sched == nil {
		return nil, fmt.Errorf("sampler: %s: nil schedule", name)
	}
	if steps < 1 {
		return nil, fmt.Errorf("sampler: %s: steps = %d, want at least 1", name, steps)
	}
	for _, r := range registry() {
		if r.name == name {
			return r.new(sched, steps, noise)
		}
	}
	return nil, fmt.Errorf("sampler: unknown sampler %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// checkLen reports a latent/model-output size mismatch.
func checkLen(what string, a, b []float32) error {
	if len(a) != len(b) {
		return fmt.Errorf("sampler: %s: latent has %d values, model output %d", what, len(a), len(b))
	}
	return nil
}

// checkStep reports a step index outside 0..n-1.
func checkStep(i, n int) error {
	if i < 0 || i >= n {
		return fmt.Errorf("sampler: step %d outside 0..%d", i, n-1)
	}
	return nil
}

// addNoise returns a*x0 + b*noise in float32; it panics if the lengths
// differ.
func addNoise(x0, noise []float32, a, b float64) []float32 {
	if len(noise) != len(x0) {
		panic(fmt.Sprintf("sampler: AddNoise: %d latent values, %d noise values", len(x0), len(noise)))
	}
	out := make([]float32, len(x0))
	fa, fb := float32(a), float32(b)
	for j := range out {
		out[j] = fa*x0[j] + fb*noise[j]
	}
	return out
}
