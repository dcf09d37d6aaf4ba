package sampler

import (
	"fmt"
	"math"
)

// Schedule is the discrete noise schedule of a DDPM-trained model (Ho et al.
// 2020, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239): T
// betas and their cumulative alpha products, plus the k-diffusion noise
// levels derived from them. Its slices are read-only after construction and
// may be shared by any number of samplers.
type Schedule struct {
	Betas           []float64 // [T] beta_t, float64 as the reference computes them
	AlphasCumprod64 []float64 // [T] prod_{s<=t} (1 - beta_s), float64
	// AlphasCumprod is the float32 table the model stores (CompVis
	// register_schedule); all samplers use it.
	AlphasCumprod []float32 // [T]
	// Sigmas are the k-diffusion noise levels sqrt((1-acp)/acp), computed in
	// float32 from AlphasCumprod (k-diffusion DiscreteEpsDDPMDenoiser);
	// increasing with t.
	Sigmas    []float32 // [T]
	logSigmas []float32 // [T] log(Sigmas), float32
}

// SD15 is the schedule of Stable Diffusion 1.x (configs/stable-diffusion/
// v1-inference.yaml: linear_start 0.00085, linear_end 0.012, 1000 timesteps;
// diffusers calls this beta schedule "scaled_linear").
func SD15() *Schedule {
	s, err := NewScaledLinear(0.00085, 0.012, 1000)
	if err != nil {
		panic(err) // constant arguments
	}
	return s
}

// NewScaledLinear builds CompVis's "linear" schedule (make_beta_schedule):
// betas = linspace(sqrt(start), sqrt(end), T)^2 in float64, alphas_cumprod =
// cumprod(1 - betas) in float64, stored as float32.
func NewScaledLinear(linearStart, linearEnd float64, timesteps int) (*Schedule, error) {
	if timesteps < 2 {
		return nil, fmt.Errorf("sampler: schedule of %d timesteps, want at least 2", timesteps)
	}
	if !(linearStart > 0 && linearStart <= linearEnd && linearEnd < 1) {
		return nil, fmt.Errorf("sampler: schedule betas %g..%g, want 0 < start <= end < 1", linearStart, linearEnd)
	}
	s := &Schedule{
		Betas:           linspace64(math.Sqrt(linearStart), math.Sqrt(linearEnd), timesteps),
		AlphasCumprod64: make([]float64, timesteps),
		AlphasCumprod:   make([]float32, timesteps),
		Sigmas:          make([]float32, timesteps),
		logSigmas:       make([]float32, timesteps),
	}
	acp := 1.0
	for t, rb := range s.Betas {
		s.Betas[t] = rb * rb
		acp *= 1 - s.Betas[t]
		s.AlphasCumprod64[t] = acp
		a := float32(acp)
		s.AlphasCumprod[t] = a
		s.Sigmas[t] = float32(math.Sqrt(float64((1 - a) / a)))
		s.logSigmas[t] = float32(math.Log(float64(s.Sigmas[t])))
	}
	return s, nil
}

// T is the number of training timesteps.
func (s *Schedule) T() int { return len(s.AlphasCumprod) }

// linspace64 is torch.linspace(start, end, n) in float64: the first half
// counts up from start, the second half down from end.
func linspace64(start, end float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float64(n-1)
	for i := range out {
		if i < n/2 {
			out[i] = start + step*float64(i)
		} else {
			out[i] = end - step*float64(n-1-i)
		}
	}
	return out
}

// linspace32 is torch.linspace(start, end, n) in float32.
func linspace32(start, end float32, n int) []float32 {
	out := make([]float32, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float32(n-1)
	for i := range out {
		if i < n/2 {
			out[i] = start + float32(step*float32(i))
		} else {
			out[i] = end - float32(step*float32(n-1-i))
		}
	}
	return out
}
