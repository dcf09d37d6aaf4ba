package sampler

import "math"

// dpmpp2M is DPM-Solver++(2M) of Lu et al. 2022, "DPM-Solver++: Fast Solver
// for Guided Sampling of Diffusion Probabilistic Models", arXiv:2211.01095,
// Algorithm 2, as k-diffusion's sample_dpmpp_2m writes it in terms of
// lambda = -log sigma: with h = log sigma_i - log sigma_{i+1},
//
//	first step or sigma_{i+1} = 0:  x = (sigma_{i+1}/sigma_i) x - expm1(-h) D_i
//	otherwise: r = (log sigma_{i-1} - log sigma_i) / h,
//	           D' = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1},
//	           x = (sigma_{i+1}/sigma_i) x - expm1(-h) D'
//
// (with sigma_{i+1} = 0 the first form is x = D_i). "dpmpp_2m_karras" runs it
// on Karras sigmas.
type dpmpp2M struct {
	prev     []float32 // D of step prevStep
	prevStep int
}

func newDPMPP2M(s *Schedule, steps int, _ func(int) []float32) (Sampler, error) {
	return newKSampler("dpmpp_2m", s, s.KSigmas(steps), &dpmpp2M{prevStep: -1}), nil
}

func newDPMPP2MKarras(s *Schedule, steps int, _ func(int) []float32) (Sampler, error) {
	return newKSampler("dpmpp_2m_karras", s, s.KarrasSigmas(steps, karrasRho), &dpmpp2M{prevStep: -1}), nil
}

func (m *dpmpp2M) update(sigmas []float64, i int, x, denoised []float32) ([]float32, error) {
	s, sNext := sigmas[i], sigmas[i+1]
	h := math.Log(s) - math.Log(sNext) // +Inf when sNext = 0
	ratio := float32(sNext / s)
	c := float32(math.Expm1(-h))
	next := make([]float32, len(x))
	if m.prevStep != i-1 || m.prev == nil || sNext == 0 {
		for j, v := range x {
			next[j] = ratio*v - c*denoised[j]
		}
	} else {
		r := (math.Log(sigmas[i-1]) - math.Log(s)) / h
		a, b := float32(1+1/(2*r)), float32(1/(2*r))
		for j, v := range x {
			d := a*denoised[j] - b*m.prev[j]
			next[j] = ratio*v - c*d
		}
	}
	m.prev = append(m.prev[:0], denoised...)
	m.prevStep = i
	return next, nil
}
