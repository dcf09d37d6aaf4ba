package tinysd

import (
	"github.com/perfusion-studio/perfusion/inference/pipeline/perf"
)

// FLOPs counts one multiply-add as 2 operations, convolutions and matrix
// products only (as perf.UNetFLOPs does).
type FLOPs struct {
	CLIP, UNet, VAEEncode, VAEDecode float64 // per image, forward
}

// Estimate counts the forward FLOPs of each model for one image.
func (c Config) Estimate() FLOPs {
	ls := c.LatentSize()
	return FLOPs{
		CLIP:      clipFLOPs(c),
		UNet:      perf.UNetFLOPs(c.UNet, 1, ls, ls, c.CLIP.MaxPositions).Total(),
		VAEEncode: vaeFLOPs(c, true),
		VAEDecode: vaeFLOPs(c, false),
	}
}

// clipFLOPs: per layer q, k, v, out (D->D) and fc1, fc2 (D<->I) on T
// tokens, plus the T x T scores and weighted sum.
func clipFLOPs(c Config) float64 {
	t, d, i := float64(c.CLIP.MaxPositions), float64(c.CLIP.HiddenSize), float64(c.CLIP.IntermediateSize)
	return float64(c.CLIP.NumLayers) * 2 * (t*(4*d*d+2*d*i) + 2*t*t*d)
}

// vaeFLOPs counts the encoder (encode) or the decoder with its quant conv:
// 3x3 convs, 1x1 shortcuts, down/upsampling convs, the middle block's
// attention at the latent size.
func vaeFLOPs(c Config, encode bool) float64 {
	v := c.VAE
	var f float64
	conv := func(cin, cout, k, s int) { f += 2 * float64(cin*cout*k*k*s*s) }
	res := func(cin, cout, s int) {
		conv(cin, cout, 3, s)
		conv(cout, cout, 3, s)
		if cin != cout {
			conv(cin, cout, 1, s)
		}
	}
	s := c.ImageSize
	last := v.Ch * v.ChMult[len(v.ChMult)-1]
	ls := c.LatentSize()
	mid := func() {
		res(last, last, ls)
		f += 2 * float64(4*last*last*ls*ls+2*ls*ls*ls*ls*last)
		res(last, last, ls)
	}
	if encode {
		conv(v.InChannels, v.Ch, 3, s)
		ch := v.Ch
		for i, m := range v.ChMult {
			for range v.NumResBlocks {
				res(ch, v.Ch*m, s)
				ch = v.Ch * m
			}
			if i != len(v.ChMult)-1 {
				s /= 2
				conv(ch, ch, 3, s)
			}
		}
		mid()
		conv(last, 2*v.ZChannels, 3, ls)
		return f
	}
	conv(v.ZChannels, last, 3, ls)
	mid()
	ch, s := last, ls
	for i := len(v.ChMult) - 1; i >= 0; i-- {
		for range v.NumResBlocks + 1 {
			res(ch, v.Ch*v.ChMult[i], s)
			ch = v.Ch * v.ChMult[i]
		}
		if i != 0 {
			s *= 2
			conv(ch, ch, 3, s)
		}
	}
	conv(v.Ch, v.OutChannels, 3, s)
	return f
}
