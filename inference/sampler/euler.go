package sampler

// Euler is the first-order ODE sampler of Karras et al. 2022, "Elucidating
// the Design Space of Diffusion-Based Generative Models", arXiv:2206.00364,
// Algorithm 2 without churn (k-diffusion sample_euler):
//
//	d = (x - D(x, sigma_i)) / sigma_i;  x_{i+1} = x + d (sigma_{i+1} - sigma_i)
//
// "euler" runs it on the normal sigmas (KSigmas), "euler_karras" on Karras
// sigmas with rho 7.
type euler struct{}

func newEuler(s *Schedule, steps int, _ func(int) []float32) (Sampler, error) {
	return newKSampler("euler", s, s.KSigmas(steps), euler{}), nil
}

func newEulerKarras(s *Schedule, steps int, _ func(int) []float32) (Sampler, error) {
	return newKSampler("euler_karras", s, s.KarrasSigmas(steps, karrasRho), euler{}), nil
}

// karrasRho is the rho of Karras et al.'s schedule used by SD samplers.
const karrasRho = 7

func (euler) update(sigmas []float64, i int, x, denoised []float32) ([]float32, error) {
	return eulerTo(sigmas, i, x, denoised, float32(sigmas[i+1])), nil
}
