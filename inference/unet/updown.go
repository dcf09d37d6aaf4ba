package unet

import (
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// downsample is openaimodel.Downsample (use_conv=True): a 3x3 convolution
// with stride 2 and padding 1, which halves a side rounding up.
type downsample struct {
	op blocks.Conv2D // op
}

func loadDownsample(l blocks.Loader, ch int) *downsample {
	return &downsample{op: blocks.LoadConv2D(l, "op", ch, ch, 3, ops.Conv2DParams{Stride: 2, Pad: ops.Pad(1)})}
}

func (d *downsample) forward(r *run, x tensor.Tensor) (tensor.Tensor, error) {
	y := r.f.Conv(d.op, x) // [B, C, ceil(H/2), ceil(W/2)]
	return y, r.f.Err()
}

// upsample is openaimodel.Upsample (use_conv=True): nearest 2x, then a 3x3
// convolution. Where the skip connection it meets next is not twice its
// input's size (a side was odd), it resizes to the skip's size by nearest
// neighbour instead, as diffusers' Upsample2D with output_size does.
type upsample struct {
	conv blocks.Conv2D // conv
}

func loadUpsample(l blocks.Loader, ch int) *upsample {
	return &upsample{conv: blocks.Conv3x3(l, "conv", ch, ch)}
}

func (u *upsample) forward(r *run, x tensor.Tensor) (tensor.Tensor, error) {
	y := r.f.UpsampleNearest(x, r.upTo[0], r.upTo[1]) // [B, C, H', W'] = 2H, 2W for even skips
	y = r.f.Conv(u.conv, y)
	return y, r.f.Err()
}
