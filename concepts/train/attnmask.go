package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// maskTimestep is the timestep at which the base model is asked where the
// superordinate word is: halfway, so the photo's layout still shows
// through the noise.
const maskTimestep = 500

// attentionMask derives loss weights [h, w] for a view from the base
// model's own cross-attention to the superordinate word (spec §6.4's
// zero-shot mask, without a segmentation model): the view's latent is
// noised to maskTimestep, the UNet runs once on "a photo of a <class>",
// and at every cross-attention layer the softmax attention of each pixel
// to the class token is averaged over heads, resized to the latent size
// and averaged over layers; the map is then normalised by its maximum and
// floored at Settings.MaskFloor.
func (tr *trainer) attentionMask(ctx context.Context, v view, seed uint64) ([]float32, error) {
	c, h, w := tr.latent[0], tr.latent[1], tr.latent[2]
	r := rand.New(rand.NewPCG(tr.s.Seed, seed))
	s := sample{t: maskTimestep, latentNoise: normals(r, c*h*w), eps: normals(r, c*h*w)}
	saved := tr.views
	tr.views = []view{v}
	zt, ts, _, _, ids, pos, err := tr.batch([]sample{s}, tr.classID)
	tr.views = saved
	if err != nil {
		return nil, err
	}
	enc, err := encodeText(tr.p.CLIP, ids, 1, tensor.Tensor{})
	if err != nil {
		return nil, fmt.Errorf("train: text encoder: %w", err)
	}
	qs := map[string][]float32{} // layer -> q [N, inner]
	ks := map[string][]float32{} // layer -> k [T, inner]
	trace := func(name string, out tensor.Tensor) {
		if l, ok := strings.CutSuffix(name, ".to_q"); ok {
			qs[l] = slices.Clone(out.Data())
		} else if l, ok := strings.CutSuffix(name, ".to_k"); ok {
			ks[l] = slices.Clone(out.Data())
		}
	}
	if _, err := tr.p.UNet.Forward(ctx, zt, ts, enc, unet.Call{Trace: trace}); err != nil {
		return nil, err
	}
	cfg := tr.p.UNet.Config
	acc := make([]float64, h*w)
	layers := 0
	for _, l := range tr.layers {
		q, k := qs[l.Name], ks[l.Name]
		inner := l.ToK.Dim(0)
		if q == nil || k == nil || inner == 0 {
			continue
		}
		heads := cfg.NumHeads
		if cfg.NumHeadChannels > 0 {
			heads = inner / cfg.NumHeadChannels
		}
		n, t := len(q)/inner, len(k)/inner
		side := int(math.Round(math.Sqrt(float64(n))))
		if side*side != n || heads <= 0 || inner%heads != 0 {
			continue // not a square map: skip the layer
		}
		m := classAttention(q, k, n, t, inner, heads, pos[0])
		for y := range h { // nearest resize of [side, side] to [h, w]
			for x := range w {
				acc[y*w+x] += m[(y*side/h)*side+x*side/w]
			}
		}
		layers++
	}
	if layers == 0 {
		return nil, fmt.Errorf("train: no cross-attention map to derive a mask from")
	}
	mx := 0.0
	for _, a := range acc {
		mx = max(mx, a)
	}
	out := make([]float32, h*w)
	for i, a := range acc {
		wt := 0.0
		if mx > 0 {
			wt = a / mx
		}
		out[i] = float32(max(wt, tr.s.MaskFloor))
	}
	return out, nil
}

// classAttention returns, for each of n pixels, the softmax attention to
// token j averaged over heads: q [n, inner], k [t, inner], heads contiguous
// slices of inner, scale dim_head^-0.5 (as the UNet's cross-attention).
func classAttention(q, k []float32, n, t, inner, heads, j int) []float64 {
	dh := inner / heads
	scale := 1 / math.Sqrt(float64(dh))
	out := make([]float64, n)
	logits := make([]float64, t)
	for p := range n {
		for hd := range heads {
			qp := q[p*inner+hd*dh : p*inner+(hd+1)*dh]
			mx := math.Inf(-1)
			for s := range t {
				kp := k[s*inner+hd*dh : s*inner+(hd+1)*dh]
				var d float64
				for i, v := range qp {
					d += float64(v) * float64(kp[i])
				}
				logits[s] = d * scale
				mx = max(mx, logits[s])
			}
			var sum float64
			for s := range t {
				sum += math.Exp(logits[s] - mx)
			}
			out[p] += math.Exp(logits[j]-mx) / sum / float64(heads)
		}
	}
	return out
}
