package unet

import (
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// resBlock is openaimodel.ResBlock (use_scale_shift_norm=False): two
// GroupNorm-SiLU-conv stages with the projected time embedding added per
// channel in between, plus a skip (identity, or a 1x1 conv when the width
// changes).
type resBlock struct {
	inNorm  blocks.GroupNorm // in_layers.0 (in_layers.1 is SiLU)
	inConv  blocks.Conv2D    // in_layers.2
	emb     blocks.Linear    // emb_layers.1 (emb_layers.0 is SiLU, computed once in run.emb)
	outNorm blocks.GroupNorm // out_layers.0 (out_layers.1 is SiLU, out_layers.2 dropout)
	outConv blocks.Conv2D    // out_layers.3
	skip    *blocks.Conv2D   // skip_connection; nil is identity
}

func loadResBlock(l blocks.Loader, cfg Config, in, out int) *resBlock {
	g, eps := cfg.NormGroups, cfg.NormEps
	b := &resBlock{
		inNorm:  blocks.LoadGroupNorm(l, "in_layers.0", in, g, eps),
		inConv:  blocks.Conv3x3(l, "in_layers.2", in, out),
		emb:     blocks.LoadLinear(l, "emb_layers.1", cfg.TimeEmbedDim(), out, true),
		outNorm: blocks.LoadGroupNorm(l, "out_layers.0", out, g, eps),
		outConv: blocks.Conv3x3(l, "out_layers.3", out, out),
	}
	if in != out {
		skip := blocks.Conv1x1(l, "skip_connection", in, out)
		b.skip = &skip
	}
	return b
}

func (b *resBlock) forward(r *run, x tensor.Tensor) (tensor.Tensor, error) {
	f := r.f
	h := f.GroupNormSiLU(b.inNorm, x) // [B, Cin, H, W]
	h = f.Conv(b.inConv, h)           // [B, Cout, H, W]
	e := f.Linear(b.emb, r.emb)       // [B, Cout]
	h = f.AddChannel(h, e)            // [B, Cout, H, W]
	h = f.GroupNormSiLU(b.outNorm, h)
	s := x
	if b.skip != nil {
		s = f.Conv(*b.skip, x) // [B, Cout, H, W]
	}
	return f.ConvAdd(b.outConv, h, s), f.Err() // skip + out_layers, [B, Cout, H, W]
}
