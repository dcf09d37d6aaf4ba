package sampler

import (
	"errors"
	"fmt"
	"math"
)

// lcm is multi-step consistency sampling for Latent Consistency Models (Luo
// et al. 2023, "Latent Consistency Models: Synthesizing High-Resolution
// Images with Few-Step Inference", arXiv:2310.04378, Algorithm 3), as
// diffusers' LCMScheduler runs it for eps-prediction checkpoints. Timesteps
// are a subset of the distillation schedule (every T/50-th: 999, 979, ...,
// 19), chosen at indices floor(i*50/N). At step i, with a = acp[t_i]:
//
//	x0       = (x - sqrt(1-a) eps) / sqrt(a)
//	denoised = c_skip(t) x + c_out(t) x0
//	c_skip   = sd^2 / ((10t)^2 + sd^2),  c_out = 10t / sqrt((10t)^2 + sd^2),  sd = 0.5
//	next     = sqrt(a') denoised + sqrt(1-a') noise   (a' = acp[t_{i+1}])
//
// and the last step returns denoised itself (no noise).
type lcm struct {
	sched *Schedule
	ts    []int // [N] descending
	noise func(n int) []float32
}

const (
	lcmOriginalSteps   = 50  // original_inference_steps: the distillation schedule
	lcmSigmaData       = 0.5 // sigma_data of the boundary condition
	lcmTimestepScaling = 10  // timestep_scaling of the boundary condition
)

func newLCM(s *Schedule, steps int, noise func(int) []float32) (Sampler, error) {
	T := s.T()
	if T < lcmOriginalSteps {
		return nil, fmt.Errorf("sampler: lcm: schedule of %d timesteps, want at least %d", T, lcmOriginalSteps)
	}
	if steps > lcmOriginalSteps {
		return nil, fmt.Errorf("sampler: lcm: %d steps, at most %d (the distillation schedule)", steps, lcmOriginalSteps)
	}
	if noise == nil && steps > 1 {
		return nil, errors.New("sampler: lcm: needs a noise source")
	}
	k := T / lcmOriginalSteps
	l := &lcm{sched: s, noise: noise}
	for i := 0; i < steps; i++ {
		idx := int(math.Floor(float64(i) * (float64(lcmOriginalSteps) / float64(steps))))
		l.ts = append(l.ts, (lcmOriginalSteps-idx)*k-1)
	}
	return l, nil
}

func (l *lcm) Timesteps() []float64 {
	out := make([]float64, len(l.ts))
	for i, t := range l.ts {
		out[i] = float64(t)
	}
	return out
}

func (l *lcm) InitNoiseSigma() float64 { return 1 }

func (l *lcm) ScaleInput(x []float32, _ int) []float32 { return append([]float32(nil), x...) }

// boundary returns c_skip and c_out at timestep t.
func lcmBoundary(t int) (cSkip, cOut float64) {
	st := float64(t) * lcmTimestepScaling
	den := st*st + lcmSigmaData*lcmSigmaData
	return lcmSigmaData * lcmSigmaData / den, st / math.Sqrt(den)
}

func (l *lcm) Step(i int, x, eps []float32) (next, denoised []float32, err error) {
	if err := checkStep(i, len(l.ts)); err != nil {
		return nil, nil, err
	}
	if err := checkLen("lcm", x, eps); err != nil {
		return nil, nil, err
	}
	a := float64(l.sched.AlphasCumprod[l.ts[i]])
	sqrtA, sqrt1mA := float32(math.Sqrt(a)), float32(math.Sqrt(1-a))
	cs, co := lcmBoundary(l.ts[i])
	cSkip, cOut := float32(cs), float32(co)
	denoised = make([]float32, len(x))
	for j, e := range eps {
		x0 := (x[j] - sqrt1mA*e) / sqrtA
		denoised[j] = cOut*x0 + cSkip*x[j]
	}
	if i == len(l.ts)-1 {
		return append([]float32(nil), denoised...), denoised, nil
	}
	z, err := noiseSource("lcm", l.noise, len(x))
	if err != nil {
		return nil, nil, err
	}
	aPrev := float64(l.sched.AlphasCumprod[l.ts[i+1]])
	return addNoise(denoised, z, math.Sqrt(aPrev), math.Sqrt(1-aPrev)), denoised, nil
}

func (l *lcm) AddNoise(x0, noise []float32, i int) []float32 {
	a := float64(l.sched.AlphasCumprod[l.ts[i]])
	return addNoise(x0, noise, math.Sqrt(a), math.Sqrt(1-a))
}
