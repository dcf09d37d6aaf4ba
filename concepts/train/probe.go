package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Probe runs a training run's passes on a loaded model without photos,
// to time them and size their memory (perfusion bench --train): its views
// are random latents in place of VAE posteriors (the work of a pass does
// not depend on them), its state starts as a run's does, and it never
// steps the optimizer or writes a file.
type Probe struct {
	tr *trainer
	n  int // passes run, which seeds the next draw
}

// NewProbe prepares passes of s.Micro samples at s.Size pixels on p with
// the metric m and the superordinate word class (one token of p's
// tokenizer). Settings other than the size, micro-batch, gate, EMA and
// recompute mode do not matter.
func NewProbe(p *pipeline.Pipeline, m edit.Metric, class string, s Settings) (*Probe, error) {
	if p == nil || m == nil {
		return nil, fmt.Errorf("train: probe: no model or metric")
	}
	if err := s.Check(p.SizeMultiple()); err != nil {
		return nil, err
	}
	classID, err := SuperclassToken(p.Tokenizer, class)
	if err != nil {
		return nil, err
	}
	tr := &trainer{
		job: Job{Pipeline: p, Name: "probe", Class: class, Metric: m, Settings: s},
		p:   p, s: s, classID: classID,
		concept: p.CLIP.Config.VocabSize, d: p.CLIP.Config.HiddenSize,
		layers: p.UNet.CrossAttentions(), start: time.Now(),
	}
	if len(tr.layers) == 0 {
		return nil, fmt.Errorf("train: the UNet has no cross-attention layers to edit")
	}
	f := 1 << (len(p.VAE.Config.ChMult) - 1)
	tr.latent = [3]int{p.VAE.Config.EmbedDim, s.Size / f, s.Size / f}
	r := rand.New(rand.NewPCG(s.Seed, 7))
	n := tr.latent[0] * tr.latent[1] * tr.latent[2]
	tr.views = []view{{mean: normals(r, n), std: make([]float32, n)}}
	sizes := []int{tr.d}
	for _, l := range tr.layers {
		sizes = append(sizes, l.ToV.Dim(0))
	}
	tr.opt = newAdamW(s, sizes)
	if err := tr.initState("probe"); err != nil {
		return nil, err
	}
	return &Probe{tr: tr}, nil
}

// Sample runs one training pass (the text encoder with the concept's
// embedding, the edited UNet forward, the backward pass to the embedding
// and every o*_V) and returns its loss.
func (pb *Probe) Sample(ctx context.Context) (float64, error) {
	tr := pb.tr
	gEmb := make([]float32, tr.d)
	gV := make([][]float32, len(tr.layers))
	for l := range gV {
		gV[l] = make([]float32, len(tr.st.OutV[l]))
	}
	pb.n++
	return tr.pass(ctx, tr.draw(pb.n, 0, tr.s.Micro), 1, gEmb, gV)
}

// ForwardPass prepares one plain UNet forward pass (no edit, no graph) of
// a pass's inputs, the unit a Sample is compared with: the text encoder
// runs now, and run is the UNet's pass alone, for the caller to time.
func (pb *Probe) ForwardPass() (run func(context.Context) error, err error) {
	tr := pb.tr
	pb.n++
	zt, ts, _, _, ids, _, err := tr.batch(tr.draw(pb.n, 0, tr.s.Micro), tr.classID)
	if err != nil {
		return nil, err
	}
	enc, err := encodeText(tr.p.CLIP, ids, tr.s.Micro, tensor.Tensor{})
	if err != nil {
		return nil, fmt.Errorf("train: text encoder: %w", err)
	}
	return func(ctx context.Context) error {
		_, err := predictNoise(ctx, tr.p.UNet, zt, ts, enc, nil)
		return err
	}, nil
}
