package vae

import (
	"fmt"
	"math"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// resnetBlock is model.ResnetBlock without time embedding (temb_channels
// 0): GroupNorm-swish-conv twice, plus a skip that is the identity or a
// 1x1 conv (nin_shortcut) when the width changes.
type resnetBlock struct {
	norm1 blocks.GroupNorm // norm1
	conv1 blocks.Conv2D    // conv1
	norm2 blocks.GroupNorm // norm2 (then swish, dropout)
	conv2 blocks.Conv2D    // conv2
	nin   *blocks.Conv2D   // nin_shortcut; nil is identity
}

func loadResnet(l blocks.Loader, cfg Config, in, out int) *resnetBlock {
	g := cfg.NormGroups
	b := &resnetBlock{
		norm1: blocks.LoadGroupNorm(l, "norm1", in, g, normEps),
		conv1: blocks.Conv3x3(l, "conv1", in, out),
		norm2: blocks.LoadGroupNorm(l, "norm2", out, g, normEps),
		conv2: blocks.Conv3x3(l, "conv2", out, out),
	}
	if in != out {
		nin := blocks.Conv1x1(l, "nin_shortcut", in, out)
		b.nin = &nin
	}
	return b
}

// forward gives each intermediate back to the flow's arena as soon as the
// next one is made (Flow.Free; nothing without an arena), so a block holds
// at most its input and three maps.
func (b *resnetBlock) forward(f *blocks.Flow, x tensor.Tensor) tensor.Tensor {
	n1 := f.GroupNormSiLU(b.norm1, x) // norm1, swish: [B, Cin, H, W]
	c1 := f.Conv(b.conv1, n1)         // [B, Cout, H, W]
	f.Free(n1)
	h := f.GroupNormSiLU(b.norm2, c1) // norm2, swish
	f.Free(c1)
	if b.nin != nil {
		x = f.Conv(*b.nin, x) // [B, Cout, H, W]
	}
	return f.ConvAdd(b.conv2, h, x) // x + conv2, [B, Cout, H, W]
}

// attnBlock is model.AttnBlock: single-head self-attention over the pixels
// with 1x1-conv q, k, v and proj_out (applied as Linear layers between the
// image and token layouts, which is the same map), scale C^-0.5, and a
// residual.
type attnBlock struct {
	norm    blocks.GroupNorm // norm
	q, k, v blocks.Linear    // q, k, v: [C, C, 1, 1] viewed as [C, C]
	proj    blocks.Linear    // proj_out
	scale   float32
}

func loadAttn(l blocks.Loader, cfg Config, ch int) *attnBlock {
	return &attnBlock{
		norm:  blocks.LoadGroupNorm(l, "norm", ch, cfg.NormGroups, normEps),
		q:     loadPointwise(l, "q", ch),
		k:     loadPointwise(l, "k", ch),
		v:     loadPointwise(l, "v", ch),
		proj:  loadPointwise(l, "proj_out", ch),
		scale: float32(1 / math.Sqrt(float64(ch))),
	}
}

// loadPointwise reads a 1x1 conv [C, C, 1, 1] (or the [C, C] some
// converters write) as a Linear [C, C].
func loadPointwise(l blocks.Loader, name string, ch int) blocks.Linear {
	return blocks.LoadPointwise(l, name, ch, ch, []int{ch, ch})
}

func (a *attnBlock) forward(f *blocks.Flow, x tensor.Tensor) tensor.Tensor {
	h, w := x.Dim(2), x.Dim(3)
	t := f.GroupNorm(a.norm, x)                   // [B, C, H, W]
	q := f.LinearToTokens(a.q, t)                 // [B, N, C]
	k := f.LinearToTokens(a.k, t)                 // [B, N, C]
	v := f.LinearToTokens(a.v, t)                 // [B, N, C]
	o := f.Attention(q, k, v, 1, a.scale, false)  // [B, N, C]
	return f.LinearFromTokens(a.proj, o, x, h, w) // x + proj_out, [B, C, H, W]
}

// level is one resolution level of the encoder (down.i) or decoder (up.i):
// ResnetBlocks, optional AttnBlocks after each, and the resampling conv
// (downsample.conv / upsample.conv) if any.
type level struct {
	name     string // "encoder.down.0", "decoder.up.1"
	blocks   []*resnetBlock
	attns    []*attnBlock // nil, or one per block
	resample *blocks.Conv2D
	up       bool // nearest 2x before the conv (decoder)
}

func loadLevel(l blocks.Loader, cfg Config, in, out, nBlocks int, attn bool) *level {
	lv := &level{name: l.Path()}
	for j := range nBlocks {
		lv.blocks = append(lv.blocks, loadResnet(l.Sub(fmt.Sprintf("block.%d", j)), cfg, in, out))
		in = out
		if attn {
			lv.attns = append(lv.attns, loadAttn(l.Sub(fmt.Sprintf("attn.%d", j)), cfg, out))
		}
	}
	return lv
}

func (lv *level) forward(f *blocks.Flow, trace blocks.Tracer, prefix string, x tensor.Tensor) tensor.Tensor {
	for j, b := range lv.blocks {
		x = scoped(f, x, b.forward) // [B, C, H, W]
		trace.Trace(fmt.Sprintf("%s%s.block.%d", prefix, lv.name, j), x)
		if lv.attns != nil {
			x = scoped(f, x, lv.attns[j].forward)
			trace.Trace(fmt.Sprintf("%s%s.attn.%d", prefix, lv.name, j), x)
		}
	}
	if lv.resample == nil {
		return x
	}
	x = scoped(f, x, func(f *blocks.Flow, x tensor.Tensor) tensor.Tensor {
		if lv.up {
			x = f.Upsample2x(x) // [B, C, 2H, 2W]
		}
		return f.Conv(*lv.resample, x) // [B, C, H/2, W/2] down; [B, C, 2H, 2W] up
	})
	if lv.up {
		trace.Trace(prefix+lv.name+".upsample", x)
	} else {
		trace.Trace(prefix+lv.name+".downsample", x)
	}
	return x
}

// scoped runs block on x and gives back to the flow's arena (see
// blocks.NewArenaFlow; without one it changes nothing) what block made
// besides its result, and x itself, which nothing reads afterwards: a
// decode at 512x512 then reuses its buffers instead of allocating 4.5 GB.
func scoped(f *blocks.Flow, x tensor.Tensor, block func(*blocks.Flow, tensor.Tensor) tensor.Tensor) tensor.Tensor {
	mark := f.Mark()
	y := block(f, x)
	f.Release(mark, y)
	if y.Node() != x.Node() {
		f.Free(x)
	}
	return y
}

// loadDownsample is model.Downsample (with_conv): pad right and bottom by
// one, then a 3x3 conv with stride 2 and no padding.
func loadDownsample(l blocks.Loader, ch int) *blocks.Conv2D {
	c := blocks.LoadConv2D(l, "conv", ch, ch, 3, ops.Conv2DParams{Stride: 2, Pad: [4]int{0, 1, 0, 1}}) // top, bottom, left, right
	return &c
}

// loadUpsample is model.Upsample (with_conv): nearest 2x, then a 3x3 conv
// with padding 1.
func loadUpsample(l blocks.Loader, ch int) *blocks.Conv2D {
	c := blocks.Conv3x3(l, "conv", ch, ch)
	return &c
}

// mid is the middle of the encoder or decoder: block_1, attn_1, block_2.
type mid struct {
	block1 *resnetBlock
	attn   *attnBlock
	block2 *resnetBlock
}

func loadMid(l blocks.Loader, cfg Config, ch int) mid {
	return mid{
		block1: loadResnet(l.Sub("block_1"), cfg, ch, ch),
		attn:   loadAttn(l.Sub("attn_1"), cfg, ch),
		block2: loadResnet(l.Sub("block_2"), cfg, ch, ch),
	}
}

func (m mid) forward(f *blocks.Flow, trace blocks.Tracer, prefix string, x tensor.Tensor) tensor.Tensor {
	x = scoped(f, x, m.block1.forward) // [B, C, H, W]
	trace.Trace(prefix+"mid.block_1", x)
	x = scoped(f, x, m.attn.forward)
	trace.Trace(prefix+"mid.attn_1", x)
	x = scoped(f, x, m.block2.forward)
	trace.Trace(prefix+"mid.block_2", x)
	return x
}
