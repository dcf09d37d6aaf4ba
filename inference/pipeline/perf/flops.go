package perf

import (
	"slices"

	"github.com/perfusion-studio/perfusion/inference/unet"
)

// FLOPs is an analytic operation count, split by kind. One multiply-add
// counts as 2 operations.
type FLOPs struct {
	Conv      float64 // convolutions: 2 * Cin * Cout * k*k * Hout*Wout per image
	Linear    float64 // linear layers: 2 * in * out per row (token or image)
	Attention float64 // scaled dot products: 2*N*T*inner (q kᵀ) + 2*N*T*inner (weights · v) per image
}

// Total is the sum of the three kinds.
func (f FLOPs) Total() float64 { return f.Conv + f.Linear + f.Attention }

func (f *FLOPs) conv(b, cin, cout, k, hout, wout int) {
	f.Conv += 2 * float64(b) * float64(cin) * float64(cout) * float64(k*k) * float64(hout) * float64(wout)
}

func (f *FLOPs) linear(rows, in, out int) {
	f.Linear += 2 * float64(rows) * float64(in) * float64(out)
}

func (f *FLOPs) attention(b, n, t, inner int) {
	f.Attention += 4 * float64(b) * float64(n) * float64(t) * float64(inner)
}

// UNetFLOPs counts one UNet forward pass on batch b of h x w latents with
// t context tokens, by walking the architecture of c as unet.Load builds it
// (CompVis openaimodel.UNetModel):
//
//   - time embedding: Linear(C, 4C), Linear(4C, 4C) per image;
//   - ResBlock(cin -> cout) at H x W: conv3x3 cin->cout, Linear(4C, cout)
//     of the time embedding, conv3x3 cout->cout, plus a 1x1 skip conv when
//     cin != cout;
//   - SpatialTransformer of width c (inner = c) over N = H*W tokens:
//     proj_in and proj_out (1x1 convs or linears, c->c), and per
//     BasicTransformerBlock: self-attention (q, k, v, out: 4 linears c->c
//     on N tokens; N x N scores), cross-attention (q, out on N tokens; k, v
//     Dc->c on the t context tokens; N x t scores), GEGLU feed-forward
//     (c->8c, 4c->c);
//   - Downsample: conv3x3 stride 2 (output ceil(H/2) x ceil(W/2));
//     Upsample: nearest resize to the size of the level above (2H x 2W when
//     the sides were even), then conv3x3 there; out: conv3x3 C->out.
//
// Normalisations, activations, softmax, residual adds and the skip
// concatenations are not counted: they are O(activations), not O(weights x
// activations), and well under 1% of the total at SD sizes.
func UNetFLOPs(c unet.Config, b, h, w, t int) FLOPs {
	var f FLOPs
	mc, ed := c.ModelChannels, c.TimeEmbedDim()
	f.linear(b, mc, ed)
	f.linear(b, ed, ed)
	res := func(cin, cout, h, w int) {
		f.conv(b, cin, cout, 3, h, w)
		f.linear(b, ed, cout)
		f.conv(b, cout, cout, 3, h, w)
		if cin != cout {
			f.conv(b, cin, cout, 1, h, w)
		}
	}
	transformer := func(ch, h, w int) {
		n := h * w
		for range 2 { // proj_in, proj_out
			if c.UseLinearProjection {
				f.linear(b*n, ch, ch)
			} else {
				f.conv(b, ch, ch, 1, h, w)
			}
		}
		for range c.TransformerDepth {
			f.linear(4*b*n, ch, ch) // attn1 q, k, v, out
			f.attention(b, n, n, ch)
			f.linear(2*b*n, ch, ch)           // attn2 q, out
			f.linear(2*b*t, c.ContextDim, ch) // attn2 k, v on the context
			f.attention(b, n, t, ch)
			f.linear(b*n, ch, 8*ch) // ff.net.0.proj (GEGLU)
			f.linear(b*n, 4*ch, ch) // ff.net.2
		}
	}
	attn := func(ds int) bool { return slices.Contains(c.AttentionResolutions, ds) }

	f.conv(b, c.InChannels, mc, 3, h, w) // input_blocks.0
	chans := []int{mc}
	sides := make([][2]int, len(c.ChannelMult)) // latent size at each level
	ch, ds := mc, 1
	for level, mult := range c.ChannelMult {
		sides[level] = [2]int{h, w}
		for range c.NumResBlocks {
			res(ch, mult*mc, h, w)
			ch = mult * mc
			if attn(ds) {
				transformer(ch, h, w)
			}
			chans = append(chans, ch)
		}
		if level != len(c.ChannelMult)-1 {
			h, w = (h+1)/2, (w+1)/2
			f.conv(b, ch, ch, 3, h, w) // Downsample
			chans = append(chans, ch)
			ds *= 2
		}
	}
	res(ch, ch, h, w) // middle_block
	transformer(ch, h, w)
	res(ch, ch, h, w)
	for level := len(c.ChannelMult) - 1; level >= 0; level-- {
		out := c.ChannelMult[level] * mc
		for i := range c.NumResBlocks + 1 {
			skip := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			res(ch+skip, out, h, w)
			ch = out
			if attn(ds) {
				transformer(ch, h, w)
			}
			if level > 0 && i == c.NumResBlocks {
				h, w = sides[level-1][0], sides[level-1][1]
				f.conv(b, ch, ch, 3, h, w) // Upsample
				ds /= 2
			}
		}
	}
	f.conv(b, mc, c.OutChannels, 3, h, w) // out.2
	return f
}
