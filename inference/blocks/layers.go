package blocks

import (
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Tracer receives a module's output under its checkpoint path
// ("input_blocks.1.1.transformer_blocks.0.attn2"), for parity tests and
// debugging. Models call it only when set.
type Tracer func(name string, out tensor.Tensor)

// Trace calls t if it is set.
func (t Tracer) Trace(name string, out tensor.Tensor) {
	if t != nil {
		t(name, out)
	}
}

// Linear is y = x W^T + b (PyTorch nn.Linear).
type Linear struct {
	Weight tensor.Tensor // [Out, In]
	Bias   tensor.Tensor // [Out], or zero for none
}

// LoadLinear reads name.weight (and name.bias when bias is set).
func LoadLinear(l Loader, name string, in, out int, bias bool) Linear {
	s := l.Sub(name)
	m := Linear{Weight: s.Tensor("weight", out, in)}
	if bias {
		m.Bias = s.Tensor("bias", out)
	}
	return m
}

// Forward maps x [..., In] to [..., Out].
func (m Linear) Forward(e *ops.Engine, x tensor.Tensor) (tensor.Tensor, error) {
	return e.Linear(x, m.Weight, m.Bias)
}

// Conv2D is a 2-D convolution with bias (PyTorch nn.Conv2d).
type Conv2D struct {
	Weight tensor.Tensor // [Out, In, K, K]
	Bias   tensor.Tensor // [Out]
	Params ops.Conv2DParams
}

// LoadConv2D reads name.weight and name.bias of a k x k convolution.
func LoadConv2D(l Loader, name string, in, out, k int, p ops.Conv2DParams) Conv2D {
	s := l.Sub(name)
	return Conv2D{Weight: s.Tensor("weight", out, in, k, k), Bias: s.Tensor("bias", out), Params: p}
}

// Conv3x3 is a 3x3 convolution, stride 1, padding 1.
func Conv3x3(l Loader, name string, in, out int) Conv2D {
	return LoadConv2D(l, name, in, out, 3, ops.Conv2DParams{Stride: 1, Pad: ops.Pad(1)})
}

// Conv1x1 is a 1x1 convolution.
func Conv1x1(l Loader, name string, in, out int) Conv2D {
	return LoadConv2D(l, name, in, out, 1, ops.Conv2DParams{Stride: 1})
}

// Forward maps x [B, In, H, W] to [B, Out, H', W'].
func (m Conv2D) Forward(e *ops.Engine, x tensor.Tensor) (tensor.Tensor, error) {
	return e.Conv2D(x, m.Weight, m.Bias, m.Params)
}

// GroupNorm normalises each of Groups channel groups over its channels and
// pixels, then applies a per-channel affine map.
type GroupNorm struct {
	Weight, Bias tensor.Tensor // [C]
	Groups       int
	Eps          float32
}

// LoadGroupNorm reads name.weight and name.bias.
func LoadGroupNorm(l Loader, name string, ch, groups int, eps float32) GroupNorm {
	s := l.Sub(name)
	return GroupNorm{Weight: s.Tensor("weight", ch), Bias: s.Tensor("bias", ch), Groups: groups, Eps: eps}
}

// Forward normalises x [B, C, ...].
func (m GroupNorm) Forward(e *ops.Engine, x tensor.Tensor) (tensor.Tensor, error) {
	return e.GroupNorm(x, m.Groups, m.Weight, m.Bias, m.Eps)
}

// LayerNorm normalises the last dimension.
type LayerNorm struct {
	Weight, Bias tensor.Tensor // [C]
	Eps          float32
}

// LoadLayerNorm reads name.weight and name.bias.
func LoadLayerNorm(l Loader, name string, ch int, eps float32) LayerNorm {
	s := l.Sub(name)
	return LayerNorm{Weight: s.Tensor("weight", ch), Bias: s.Tensor("bias", ch), Eps: eps}
}

// Forward normalises x [..., C].
func (m LayerNorm) Forward(e *ops.Engine, x tensor.Tensor) (tensor.Tensor, error) {
	return e.LayerNorm(x, m.Weight, m.Bias, m.Eps)
}
