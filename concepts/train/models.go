package train

import (
	"context"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// The two calls below hand a run's state to the shared models per call
// (the models are never changed), so a training run, a preview and a
// render can share one loaded model.

// encodeText runs the text encoder on ids [B, 77] with the concept word's
// embedding extra [1, D] as token id VocabSize (the zero Tensor: none).
func encodeText(m *clip.Model, ids []int, batch int, extra tensor.Tensor) (tensor.Tensor, error) {
	r, err := m.ForwardWith(ids, batch, clip.Options{Extra: extra})
	return r.Out, err
}

// encodeTextRecompute is encodeText with its layers checkpointed on rc
// (see clip.Options.Recompute; check rc.Err after the backward pass).
func encodeTextRecompute(m *clip.Model, ids []int, batch int, extra tensor.Tensor, rc *blocks.Recompute) (tensor.Tensor, error) {
	r, err := m.ForwardWith(ids, batch, clip.Options{Extra: extra, Recompute: rc})
	return r.Out, err
}

// predictNoise runs the UNet with ed (nil: unedited) for this call.
func predictNoise(ctx context.Context, m *unet.Model, x tensor.Tensor, t []float32, cond tensor.Tensor, ed unet.KVEditor) (tensor.Tensor, error) {
	return m.Forward(ctx, x, t, cond, unet.Call{Editor: ed})
}

// predictNoiseRecompute is predictNoise with its blocks checkpointed on rc
// (see unet.Call.Recompute; check rc.Err after the backward pass).
func predictNoiseRecompute(ctx context.Context, m *unet.Model, x tensor.Tensor, t []float32, cond tensor.Tensor, ed unet.KVEditor, rc *blocks.Recompute) (tensor.Tensor, error) {
	return m.Forward(ctx, x, t, cond, unet.Call{Editor: ed, Recompute: rc})
}
