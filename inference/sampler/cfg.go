package sampler

import "fmt"

// CFG is classifier-free guidance (Ho and Salimans 2022, "Classifier-Free
// Diffusion Guidance", arXiv:2207.12598) as CompVis's p_sample_ddim applies
// it: e = e_uncond + scale*(e_cond - e_uncond), elementwise in float32. It
// panics if the lengths differ.
func CFG(epsUncond, epsCond []float32, scale float32) []float32 {
	if len(epsUncond) != len(epsCond) {
		panic(fmt.Sprintf("sampler: CFG: %d unconditional values, %d conditional", len(epsUncond), len(epsCond)))
	}
	out := make([]float32, len(epsCond))
	for j, u := range epsUncond {
		out[j] = u + scale*(epsCond[j]-u)
	}
	return out
}
