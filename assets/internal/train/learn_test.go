package train

import (
	"context"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// Repeated AdamW steps on one fixed batch drive its loss well down, for
// the VAE and for the text encoder + UNet: the losses, gradients and
// updates point the right way end to end.
func TestOverfitOneBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: 2 x 40 training steps")
	}
	cfg, tok := tiny(t)
	opt := tinyOptions()
	opt.CaptionDrop = 0
	w, err := cfg.Init(opt.Seed)
	if err != nil {
		t.Fatal(err)
	}
	e := ops.CPU()
	r := &runner{cfg: cfg, tok: tok, data: squares{size: 16}, opt: opt, e: e,
		st: &State{Seed: opt.Seed, Weights: w, ScaleFactor: 1}}
	ctx := context.Background()
	fit := func(name string, ps map[string]tensor.Tensor, loss func() tensor.Tensor) {
		o := NewAdamW()
		list := params(ps)
		var first, last float32
		for i := range 40 {
			l := loss()
			if i == 0 {
				first = l.Data()[0]
			}
			last = l.Data()[0]
			if err := Backward(l); err != nil {
				t.Fatal(err)
			}
			o.Update(list, 3e-3)
		}
		t.Logf("%s: loss %.4f -> %.4f", name, first, last)
		if !(last < 0.5*first) {
			t.Errorf("%s: loss %v after 40 steps on one batch, started at %v: want under half", name, last, first)
		}
	}
	pv := map[string]tensor.Tensor{}
	mv, err := vae.Load(e, w, cfg.VAE, blocks.LoadOptions{Params: pv})
	if err != nil {
		t.Fatal(err)
	}
	fit("vae", pv, func() tensor.Tensor {
		l, _, err := vaeLoss(ctx, mv, r.vaeInputs(0), r.opt.KLWeight)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
	pu := map[string]tensor.Tensor{}
	te, err := clip.Load(e, w, cfg.CLIP, blocks.LoadOptions{Params: pu})
	if err != nil {
		t.Fatal(err)
	}
	un, err := unet.Load(e, w, cfg.UNet, blocks.LoadOptions{Params: pu})
	if err != nil {
		t.Fatal(err)
	}
	ae, err := vae.Load(e, w, cfg.VAE)
	if err != nil {
		t.Fatal(err)
	}
	fit("clip+unet", pu, func() tensor.Tensor {
		l, err := r.unetLoss(ctx, te, un, ae, 0)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
