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
	return m.ForwardAdd(e, x, tensor.Tensor{})
}

// ForwardAdd maps x [..., In] to [..., Out] and adds r [..., Out] (a
// residual; the zero Tensor adds nothing) in the same operator.
func (m Linear) ForwardAdd(e *ops.Engine, x, r tensor.Tensor) (tensor.Tensor, error) {
	w, release := weight(e, m.Weight, m.Half, x, m.Bias, r)
	defer release()
	return e.LinearAdd(x, w, m.Bias, r)
}

// ForwardToTokens maps the channels of an image x [B, In, H, W] and lays
// the result out as tokens [B, H*W, Out] (Linear of ToTokens(x), without
// the transpose).
func (m Linear) ForwardToTokens(e *ops.Engine, x tensor.Tensor) (tensor.Tensor, error) {
	w, release := weight(e, m.Weight, m.Half, x, m.Bias)
	defer release()
	return e.LinearToTokens(x, w, m.Bias)
}

// ForwardFromTokens maps tokens t [B, h*w, In] to an image [B, Out, h, w]
// and adds r of that shape (a residual; the zero Tensor adds nothing):
// FromTokens of Linear(t) plus r, without the transpose.
func (m Linear) ForwardFromTokens(e *ops.Engine, t, r tensor.Tensor, h, w int) (tensor.Tensor, error) {
	wt, release := weight(e, m.Weight, m.Half, t, m.Bias, r)
	defer release()
	return e.LinearFromTokens(t, wt, m.Bias, r, h, w)
}

// LoadPointwise reads a 1x1 convolution name.weight [out, in, 1, 1] and
// name.bias as the Linear [out, in] it equals on the channels of each
// pixel (Linear.ForwardToTokens and ForwardFromTokens apply it to images).
// alt lists other accepted weight shapes (as Loader.Matrix), such as the
// [out, in] that some converters write.
func LoadPointwise(l Loader, name string, in, out int, alt ...[]int) Linear {
	s := l.Sub(name)
	w, h := s.Matrix("weight", append([][]int{{out, in, 1, 1}}, alt...)...)
	if w.Valid() {
		w, _ = w.Reshape(out, in) // same numel by construction
	}
	if h != nil {
		h, _ = h.Reshape(out, in)
	}
	return Linear{Weight: w, Half: h, Bias: s.Tensor("bias", out)}
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
	return m.ForwardAdd(e, x, tensor.Tensor{})
}

// ForwardAdd maps x [B, In, H, W] to [B, Out, H', W'] and adds r of the
// output's shape (a residual; the zero Tensor adds nothing) in the same
// operator. A float16 weight is read as stored where the convolution
// multiplies its rows in that order (Engine.ConvOIHW: directly when the
// backend multiplies float16, see HalfTensor.Float32), and otherwise
// converted straight into the layout it computes in (ops.OHIW).
func (m Conv2D) ForwardAdd(e *ops.Engine, x, r tensor.Tensor) (tensor.Tensor, error) {
	if m.Half == nil || len(m.Half.shape) != 4 || m.Half.shape[2]*m.Half.shape[3] == 1 {
		w, release := weight(e, m.Weight, m.Half, x, m.Bias, r)
		defer release()
		return e.Conv2DAdd(x, w, m.Bias, r, m.Params)
	}
	keep := needsGrad(x, m.Bias, r)
	if m.Params.Layout == ops.OIHW && e.ConvOIHW(x, m.Half.shapeOnly(), m.Params) {
		w, release := m.Half.Float32(e, keep) // as stored: directly, or converted without reordering
		defer release()
		return e.Conv2DAdd(x, w, m.Bias, r, m.Params)
	}
	w, release := m.Half.Float32OHIW(e, keep)
	defer release()
	p := m.Params
	p.Layout = ops.OHIW
	return e.Conv2DAdd(x, w, m.Bias, r, p)
}

// weight returns the float32 weight for one call of a layer: w itself, or
// half converted (see HalfTensor.Float32), kept out of the pool when the
// call records a gradient graph (an operand requires grad).
func weight(e *ops.Engine, w tensor.Tensor, half *HalfTensor, operands ...tensor.Tensor) (tensor.Tensor, func()) {
	if half == nil {
		return w, func() {}
	}
	return half.Float32(e, needsGrad(operands...))
}

// needsGrad reports whether any valid tensor requires gradients.
func needsGrad(ts ...tensor.Tensor) bool {
	for _, t := range ts {
		if t.Valid() && t.RequiresGrad() {
			return true
		}
	}
	return false
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

// ForwardSiLU normalises x [B, C, ...] and applies SiLU, in one operator.
func (m GroupNorm) ForwardSiLU(e *ops.Engine, x tensor.Tensor) (tensor.Tensor, error) {
	return e.GroupNormSiLU(x, m.Groups, m.Weight, m.Bias, m.Eps)
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
