package sampler

import (
	"fmt"
	"math"
)

// DDIMSchedule is CompVis's DDIM parameter set (make_ddim_timesteps
// "uniform" and make_ddim_sampling_parameters), in index order k (ascending
// timestep); sampling visits k = K-1 down to 0.
type DDIMSchedule struct {
	// Timesteps = range(0, T, T/N) + 1. When N does not divide T this has
	// more than N entries (the reference runs them all: N=7 gives 8 steps).
	// When T/N divides T-1 the last entry is T, past the schedule's end
	// (T=1000: N = 3, 9, 27, 36, 37, 101-111, 251-333, 501-1000), where the
	// reference fails with an index error; that entry is dropped, which
	// leaves (T-1)/(T/N) steps (N=3: 1, 334, 667; N=1000: 1..999).
	Timesteps          []int     // [K]
	Alphas             []float32 // [K] a_t = acp[Timesteps[k]]
	AlphasPrev         []float32 // [K] acp[Timesteps[k-1]]; acp[0] (not 1) for k = 0
	SqrtOneMinusAlphas []float32 // [K] sqrt(1 - a_t), float32
}

// NewDDIMSchedule computes the DDIM parameters of N = steps steps.
func NewDDIMSchedule(s *Schedule, steps int) (DDIMSchedule, error) {
	T := s.T()
	if steps < 1 || steps > T {
		return DDIMSchedule{}, fmt.Errorf("sampler: ddim: %d steps, want 1..%d", steps, T)
	}
	var p DDIMSchedule
	for t := 0; t < T; t += T / steps {
		if t+1 < T { // the reference's t+1 = T indexes past the table
			p.Timesteps = append(p.Timesteps, t+1)
		}
	}
	acp := s.AlphasCumprod
	for k, t := range p.Timesteps {
		a := acp[t]
		prev := acp[0]
		if k > 0 {
			prev = acp[p.Timesteps[k-1]]
		}
		p.Alphas = append(p.Alphas, a)
		p.AlphasPrev = append(p.AlphasPrev, prev)
		p.SqrtOneMinusAlphas = append(p.SqrtOneMinusAlphas, sqrt32(1-a))
	}
	return p, nil
}

// Sigmas is the DDIM noise scale of each index for a given eta:
// eta * sqrt((1-a_prev)/(1-a_t) * (1 - a_t/a_prev)) (0 for eta = 0).
func (p DDIMSchedule) Sigmas(eta float64) []float32 {
	out := make([]float32, len(p.Alphas))
	for k, a := range p.Alphas {
		at, ap := float64(a), float64(p.AlphasPrev[k])
		out[k] = float32(eta * math.Sqrt((1-ap)/(1-at)*(1-at/ap)))
	}
	return out
}

// ddim is deterministic DDIM sampling (eta = 0) from Song, Meng and Ermon
// 2021, "Denoising Diffusion Implicit Models", arXiv:2010.02502, eq. 12, as
// CompVis's DDIMSampler runs it, at DDIM index k = K-1-i for step i:
//
//	pred_x0 = (x - sqrt(1-a_t) eps) / sqrt(a_t)
//	x_prev  = sqrt(a_prev) pred_x0 + sqrt(1-a_prev) eps
//
// with a_t, a_prev from the float32 alphas_cumprod table and float32
// coefficients, as in the reference.
type ddim struct {
	p DDIMSchedule
}

func newDDIM(s *Schedule, steps int, _ func(int) []float32) (Sampler, error) {
	p, err := NewDDIMSchedule(s, steps)
	if err != nil {
		return nil, err
	}
	return &ddim{p: p}, nil
}

// index is the DDIM index k of step i (steps run from the largest t).
func (d *ddim) index(i int) int { return len(d.p.Timesteps) - 1 - i }

func (d *ddim) Timesteps() []float64 {
	ts := make([]float64, len(d.p.Timesteps))
	for i := range ts {
		ts[i] = float64(d.p.Timesteps[d.index(i)])
	}
	return ts
}

func (d *ddim) InitNoiseSigma() float64 { return 1 }

func (d *ddim) ScaleInput(x []float32, _ int) []float32 { return append([]float32(nil), x...) }

func (d *ddim) Step(i int, x, eps []float32) (next, denoised []float32, err error) {
	if err := checkStep(i, len(d.p.Timesteps)); err != nil {
		return nil, nil, err
	}
	if err := checkLen("ddim", x, eps); err != nil {
		return nil, nil, err
	}
	k := d.index(i)
	// The reference's coefficients are float32 tensors.
	sqrtA := sqrt32(d.p.Alphas[k])
	sqrt1mA := d.p.SqrtOneMinusAlphas[k]
	sqrtAPrev := sqrt32(d.p.AlphasPrev[k])
	dirCoef := sqrt32(1 - d.p.AlphasPrev[k]) // sqrt(1 - a_prev - sigma^2), sigma = 0
	next = make([]float32, len(x))
	denoised = make([]float32, len(x))
	for j, e := range eps {
		x0 := (x[j] - sqrt1mA*e) / sqrtA
		denoised[j] = x0
		next[j] = sqrtAPrev*x0 + dirCoef*e
	}
	return next, denoised, nil
}

func (d *ddim) AddNoise(x0, noise []float32, i int) []float32 {
	a := float64(d.p.Alphas[d.index(i)])
	return addNoise(x0, noise, math.Sqrt(a), math.Sqrt(1-a))
}

// sqrt32 is the float32 square root.
func sqrt32(v float32) float32 { return float32(math.Sqrt(float64(v))) }
