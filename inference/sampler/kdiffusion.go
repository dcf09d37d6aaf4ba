package sampler

import (
	"fmt"
	"math"
)

// The k-diffusion family (crowsonkb/k-diffusion) runs on the noise levels
// sigma of a discrete-time eps model through CompVisDenoiser:
//
//	D(x, sigma) = x - sigma * eps(x / sqrt(sigma^2 + 1), t(sigma))
//
// where t(sigma) interpolates log sigma in the schedule's table (SigmaToT).
// Sampling starts from sigma_0 * x_T. The schedule math is float32, as the
// reference computes it on float32 tensors.

// KSigmas is k-diffusion's get_sigmas(N): t = linspace(T-1, 0, N) (float32),
// sigma(t) by log-linear interpolation of Sigmas, then a final 0 (N+1 values;
// nil for n < 1).
func (s *Schedule) KSigmas(n int) []float64 {
	if n < 1 {
		return nil
	}
	ts := linspace32(float32(s.T()-1), 0, n)
	out := make([]float64, n+1)
	for i, t := range ts {
		out[i] = float64(s.tToSigma(t))
	}
	return out
}

// KarrasSigmas is the noise schedule of Karras et al. 2022 (eq. 5):
// (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho for i = 0..N-1,
// with smin, smax the schedule's extreme Sigmas, then a final 0. SD samplers
// use rho = 7. It is nil for n < 1.
func (s *Schedule) KarrasSigmas(n int, rho float64) []float64 {
	if n < 1 {
		return nil
	}
	smin, smax := float64(s.Sigmas[0]), float64(s.Sigmas[s.T()-1])
	minInv, maxInv := math.Pow(smin, 1/rho), math.Pow(smax, 1/rho)
	d := float32(minInv - maxInv)
	out := make([]float64, n+1)
	for i, r := range linspace32(0, 1, n) {
		v := float32(r*d) + float32(maxInv)
		out[i] = float64(float32(math.Pow(float64(v), rho)))
	}
	return out
}

// tToSigma interpolates log sigma linearly between the integer timesteps
// around t (k-diffusion t_to_sigma).
func (s *Schedule) tToSigma(t float32) float32 {
	lo := int(math.Floor(float64(t)))
	hi := int(math.Ceil(float64(t)))
	w := t - float32(lo)
	ls := float32((1-w)*s.logSigmas[lo]) + float32(w*s.logSigmas[hi])
	return float32(math.Exp(float64(ls)))
}

// SigmaToT is the fractional model timestep of a noise level (k-diffusion
// sigma_to_t, quantize=False): with k = #{j : log Sigmas[j] <= log sigma}
// and lo = clamp(k-1, 0, T-2), t = lo + w, where w in [0, 1] places log sigma
// between log Sigmas[lo] and log Sigmas[lo+1].
func (s *Schedule) SigmaToT(sigma float64) float64 {
	ls := s.logSigmas
	logSigma := float32(math.Log(float64(float32(sigma))))
	k := 0
	for k < len(ls) && ls[k] <= logSigma { // ls is increasing
		k++
	}
	lo := min(max(k-1, 0), len(ls)-2)
	w := (ls[lo] - logSigma) / (ls[lo] - ls[lo+1])
	w = min(max(w, 0), 1)
	return float64(float32((1-w)*float32(lo)) + float32(w*float32(lo+1)))
}

// kUpdate is the update rule of one k-diffusion sampler: the next latent from
// the latent x at sigmas[i] and its denoised estimate.
type kUpdate interface {
	update(sigmas []float64, i int, x, denoised []float32) ([]float32, error)
}

// kSampler adapts a kUpdate to the eps-model Sampler interface through
// CompVisDenoiser.
type kSampler struct {
	name   string
	sched  *Schedule
	sigmas []float64 // [N+1] float32 values, last 0
	ts     []float64 // [N] model t = SigmaToT(sigmas[i])
	rule   kUpdate
}

var _ KSampler = (*kSampler)(nil)

func newKSampler(name string, s *Schedule, sigmas []float64, rule kUpdate) *kSampler {
	k := &kSampler{name: name, sched: s, sigmas: sigmas, rule: rule}
	for _, sg := range sigmas[:len(sigmas)-1] {
		k.ts = append(k.ts, s.SigmaToT(sg))
	}
	return k
}

func (k *kSampler) Timesteps() []float64    { return append([]float64(nil), k.ts...) }
func (k *kSampler) Sigmas() []float64       { return append([]float64(nil), k.sigmas...) }
func (k *kSampler) InitNoiseSigma() float64 { return k.sigmas[0] }

// ScaleInput is x * c_in with c_in = 1/sqrt(sigma^2 + 1) (float32).
func (k *kSampler) ScaleInput(x []float32, i int) []float32 {
	s := float32(k.sigmas[i])
	cIn := float32(1 / math.Sqrt(float64(s*s+1)))
	out := make([]float32, len(x))
	for j, v := range x {
		out[j] = v * cIn
	}
	return out
}

// Step forms D = x - sigma*eps and applies the sampler's update.
func (k *kSampler) Step(i int, x, eps []float32) (next, denoised []float32, err error) {
	if err := checkStep(i, len(k.ts)); err != nil {
		return nil, nil, err
	}
	if err := checkLen(k.name, x, eps); err != nil {
		return nil, nil, err
	}
	cOut := -float32(k.sigmas[i])
	denoised = make([]float32, len(x))
	for j, e := range eps {
		denoised[j] = x[j] + e*cOut
	}
	next, err = k.rule.update(k.sigmas, i, x, denoised)
	return next, denoised, err
}

func (k *kSampler) StepDenoised(i int, x, denoised []float32) ([]float32, error) {
	if err := checkStep(i, len(k.ts)); err != nil {
		return nil, err
	}
	if err := checkLen(k.name, x, denoised); err != nil {
		return nil, err
	}
	return k.rule.update(k.sigmas, i, x, denoised)
}

// AddNoise is x0 + sigma_i * noise.
func (k *kSampler) AddNoise(x0, noise []float32, i int) []float32 {
	return addNoise(x0, noise, 1, k.sigmas[i])
}

// eulerTo moves x along the ODE direction d = (x - D)/sigma_i to level to:
// x + d*(to - sigma_i), in float32 as k-diffusion's to_d and Euler step.
func eulerTo(sigmas []float64, i int, x, denoised []float32, to float32) []float32 {
	s := float32(sigmas[i])
	dt := to - s
	out := make([]float32, len(x))
	for j, v := range x {
		d := (v - denoised[j]) / s
		out[j] = v + d*dt
	}
	return out
}

// noiseSource wraps the injected noise function with a length check.
func noiseSource(name string, noise func(int) []float32, n int) ([]float32, error) {
	z := noise(n)
	if len(z) != n {
		return nil, fmt.Errorf("sampler: %s: noise source gave %d values, want %d", name, len(z), n)
	}
	return z, nil
}
