package ops

import "math"

// TimestepEmbedding is the sinusoidal timestep embedding of the CompVis
// UNet (ldm/modules/diffusionmodules/util.py, timestep_embedding): for each
// t, half = dim/2, freq_i = exp(-ln(10000) * i / half), and the row is
// [cos(t*freq), sin(t*freq)] (cos first), plus a zero column when dim is
// odd. It computes in float32 like the reference. The result is
// [len(t), dim], row-major.
func TimestepEmbedding(t []float32, dim int) []float32 {
	if dim <= 0 {
		return nil
	}
	half := dim / 2
	freq := make([]float32, half)
	lnMax := float32(-math.Log(10000))
	for i := range freq {
		freq[i] = float32(math.Exp(float64(lnMax * float32(i) / float32(half))))
	}
	out := make([]float32, len(t)*dim)
	for n, tv := range t {
		row := out[n*dim : (n+1)*dim]
		for i, f := range freq {
			arg := float64(tv * f)
			row[i] = float32(math.Cos(arg))
			row[half+i] = float32(math.Sin(arg))
		}
	}
	return out
}
