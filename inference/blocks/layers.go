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

// Linear is y = x W^T + b (PyTorch nn.Linear). Its weight is either the
// float32 Weight or the float16 Half (exactly one is set).
type Linear struct {
	Weight tensor.Tensor // [Out, In], or zero when Half is set
	Half   *HalfTensor   // [Out, In] held as float16, or nil
	Bias   tensor.Tensor // [Out], or zero for none
}

// LoadLinear reads name.weight (and name.bias when bias is set); the
// weight is held per the loader's HalfMode.
func LoadLinear(l Loader, name string, in, out int, bias bool) Linear {
	s := l.Sub(name)
	var m Linear
	m.Weight, m.Half = s.Matrix("weight", []int{out, in})
	if bias {
		m.Bias = s.Tensor("bias", out)
	}
	return m
}

// Forward maps x [..., In] to [..., Out].
func (m Linear) Forward(e *ops.Engine, x tensor.Tensor) (tensor.Tensor, error) {
	w, release := weight(e, m.Weight, m.Half, x, m.Bias)
	defer release()
	return e.Linear(x, w, m.Bias)
}

// Conv2D is a 2-D convolution with bias (PyTorch nn.Conv2d). Its weight is
// either the float32 Weight or the float16 Half (exactly one is set).
type Conv2D struct {
	Weight tensor.Tensor // [Out, In, K, K], or zero when Half is set
	Half   *HalfTensor   // [Out, In, K, K] held as float16, or nil
	Bias   tensor.Tensor // [Out]
	Params ops.Conv2DParams
}

// LoadConv2D reads name.weight and name.bias of a k x k convolution; the
// weight is held per the loader's HalfMode.
func LoadConv2D(l Loader, name string, in, out, k int, p ops.Conv2DParams) Conv2D {
	s := l.Sub(name)
	m := Conv2D{Params: p}
	m.Weight, m.Half = s.Matrix("weight", []int{out, in, k, k})
	m.Bias = s.Tensor("bias", out)
	return m
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
	w, release := weight(e, m.Weight, m.Half, x, m.Bias)
	defer release()
	return e.Conv2D(x, w, m.Bias, m.Params)
}

// weight returns the float32 weight for one call of a layer on x: w
// itself, or half converted (see HalfTensor.Float32), kept out of the pool
// when the call records a gradient graph (x or the bias requires grad).
func weight(e *ops.Engine, w tensor.Tensor, half *HalfTensor, x, b tensor.Tensor) (tensor.Tensor, func()) {
	if half == nil {
		return w, func() {}
	}
	keep := x.Valid() && x.RequiresGrad() || b.Valid() && b.RequiresGrad()
	return half.Float32(e, keep)
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
