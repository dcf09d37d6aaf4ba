package sampler

import (
	"errors"
	"math"
)

// eulerAncestral is k-diffusion's sample_euler_ancestral with eta 1: an Euler
// step down to sigma_down, then fresh noise of scale sigma_up, so that the
// marginal at sigma_{i+1} is that of DDPM ancestral sampling (Ho et al. 2020,
// "Denoising Diffusion Probabilistic Models", arXiv:2006.11239):
//
//	sigma_up   = min(s', sqrt(s'^2 (s^2 - s'^2) / s^2))
//	sigma_down = sqrt(s'^2 - sigma_up^2)
//	x = x + d (sigma_down - s);  if s' > 0: x += sigma_up * noise
//
// with s = sigma_i, s' = sigma_{i+1}. Noise is drawn only on steps with
// s' > 0 (N-1 draws), one latent's worth each.
type eulerAncestral struct {
	noise func(n int) []float32
}

func newEulerAncestral(s *Schedule, steps int, noise func(int) []float32) (Sampler, error) {
	if noise == nil && steps > 1 {
		return nil, errors.New("sampler: euler_a: needs a noise source")
	}
	return newKSampler("euler_a", s, s.KSigmas(steps), &eulerAncestral{noise: noise}), nil
}

func (e *eulerAncestral) update(sigmas []float64, i int, x, denoised []float32) ([]float32, error) {
	from, to := sigmas[i], sigmas[i+1]
	up := math.Min(to, math.Sqrt(to*to*(from*from-to*to)/(from*from)))
	down := math.Sqrt(to*to - up*up)
	next := eulerTo(sigmas, i, x, denoised, float32(down))
	if to > 0 {
		z, err := noiseSource("euler_a", e.noise, len(x))
		if err != nil {
			return nil, err
		}
		u := float32(up)
		for j := range next {
			next[j] += z[j] * u
		}
	}
	return next, nil
}
