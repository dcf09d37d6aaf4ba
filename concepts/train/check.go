package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/inference/rng"
	"github.com/perfusion-studio/perfusion/inference/sampler"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// Self-check settings.
const (
	evalSamples = 4    // fixed samples the evaluation loss is taken on
	checkSteps  = 8    // DDIM steps of each self-check render
	checkSeed   = 1234 // their noise seed
	// MinChange is the least relative difference between the base and the
	// concept render that counts as the edit changing the output.
	MinChange = 1e-3
)

// Check is the self-check of a trained concept: the loss on a fixed set of
// samples before and after training, and two renders at a fixed seed
// (DDIM, no guidance): the base model on "a photo of a <class>" and the
// edited model on "a photo of a <concept>".
type Check struct {
	EvalStart, EvalEnd float64
	// Change is the RMS difference of the two renders' final latents over
	// the RMS of the base render's.
	Change        float64
	Base, Concept tensor.Tensor // final latents [1, C, h, w]
}

// problem says why a check fails, or "" if it passes.
func (c Check) problem() string {
	switch {
	case math.IsNaN(c.EvalEnd) || math.IsInf(c.EvalEnd, 0):
		return "the loss diverged; try a lower learning rate or the paper preset"
	case !(c.EvalEnd < c.EvalStart):
		return fmt.Sprintf("the loss on fixed samples did not fall (%.5f before, %.5f after); try more steps (--steps), more varied photos or a closer superordinate word",
			c.EvalStart, c.EvalEnd)
	case !(c.Change >= MinChange):
		return fmt.Sprintf("the concept barely changes the image (%.2g relative change, want at least %.2g); try more steps or higher learning rates",
			c.Change, MinChange)
	}
	return ""
}

// constConcept is the edit's view of the current state with constant
// tensors (no gradients), for evaluation and rendering.
func (tr *trainer) constConcept(beta, tau float32) *edit.Concept {
	oV := make([]tensor.Tensor, len(tr.layers))
	for l := range oV {
		oV[l] = tensor.MustNew(tr.st.OutV[l], len(tr.st.OutV[l]))
	}
	c := tr.editConcept(oV, tensor.MustNew(tr.st.Embedding, tr.d))
	c.Beta, c.Tau = beta, tau
	return c
}

// evalLoss is the loss of the current state on fixed samples, without
// gradients and without moving i*.
func (tr *trainer) evalLoss(ctx context.Context) (float64, error) {
	r := rand.New(rand.NewPCG(tr.s.Seed, 1<<63))
	size := tr.latent[0] * tr.latent[1] * tr.latent[2]
	ss := make([]sample, evalSamples)
	for i := range ss {
		// spread the timesteps over the schedule, so one draw cannot
		// leave them all at the noisiest end
		lo := i * tr.p.Schedule.T() / evalSamples
		ss[i] = sample{view: i % len(tr.views), template: r.IntN(len(tr.s.TrainingTemplates())),
			t: lo + r.IntN(tr.p.Schedule.T()/evalSamples), latentNoise: normals(r, size), eps: normals(r, size)}
	}
	var total float64
	for i := range ss { // one at a time: batch 1 bounds memory
		zt, ts, eps, wts, ids, _, err := tr.batch(ss[i:i+1], tr.concept)
		if err != nil {
			return 0, err
		}
		emb := tensor.MustNew(tr.st.Embedding, 1, tr.d)
		enc, err := encodeText(tr.p.CLIP, ids, 1, emb)
		if err != nil {
			return 0, fmt.Errorf("train: text encoder: %w", err)
		}
		ed, err := edit.NewEditor(tr.p.Engine, enc, []*edit.Concept{tr.constConcept(tr.s.GateBeta, tr.s.GateTau)}, tr.job.Metric, edit.Options{})
		if err != nil {
			return 0, fmt.Errorf("train: %w", err)
		}
		pred, err := predictNoise(ctx, tr.p.UNet, zt, ts, enc, ed)
		if err != nil {
			return 0, err
		}
		l, err := weightedMSE(pred, eps, wts, 1/float64(len(ss)))
		if err != nil {
			return 0, err
		}
		total += float64(l.Data()[0])
	}
	return total, nil
}

// render samples "a photo of a <word>" at the check seed: with the
// concept's edit (at its inference gate) when word is the concept's id,
// with the base model otherwise. It returns the final latents.
func (tr *trainer) render(ctx context.Context, word int) (tensor.Tensor, error) {
	pr, err := tokenizeTemplate(tr.p.Tokenizer, tr.s.TrainingTemplates()[0], word)
	if err != nil {
		return tensor.Tensor{}, err
	}
	var emb tensor.Tensor
	if word == tr.concept {
		emb = tensor.MustNew(tr.st.Embedding, 1, tr.d)
	}
	enc, err := encodeText(tr.p.CLIP, pr.ids, 1, emb)
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("train: text encoder: %w", err)
	}
	var ed unet.KVEditor
	if word == tr.concept {
		ed, err = edit.NewEditor(tr.p.Engine, enc, []*edit.Concept{tr.constConcept(edit.InferenceBeta, edit.InferenceTau)}, tr.job.Metric, edit.Options{})
		if err != nil {
			return tensor.Tensor{}, fmt.Errorf("train: %w", err)
		}
	}
	c, h, w := tr.latent[0], tr.latent[1], tr.latent[2]
	g := rng.New(checkSeed)
	xT := g.Randn(c * h * w)
	s, err := sampler.New("ddim", tr.p.Schedule, checkSteps, g.Randn)
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("train: %w", err)
	}
	eps := func(ctx context.Context, x []float32, t float64) ([]float32, error) {
		out, err := predictNoise(ctx, tr.p.UNet, tensor.MustNew(x, 1, c, h, w), []float32{float32(t)}, enc, ed)
		if err != nil {
			return nil, err
		}
		return out.Data(), nil
	}
	final, err := sampler.Sample(ctx, s, eps, xT, nil)
	if err != nil {
		return tensor.Tensor{}, err
	}
	return tensor.New(final, 1, c, h, w)
}

// selfCheck evaluates the trained state (see Check).
func (tr *trainer) selfCheck(ctx context.Context) (Check, error) {
	stageStart := time.Now()
	chk := Check{EvalStart: tr.st.EvalStart}
	var err error
	if chk.EvalEnd, err = tr.evalLoss(ctx); err != nil {
		return chk, err
	}
	tr.report(StageCheck, 1, 3, 0, stageStart, 0)
	if chk.Base, err = tr.render(ctx, tr.classID); err != nil {
		return chk, err
	}
	tr.report(StageCheck, 2, 3, 0, stageStart, 0)
	if chk.Concept, err = tr.render(ctx, tr.concept); err != nil {
		return chk, err
	}
	tr.report(StageCheck, 3, 3, 0, stageStart, 0)
	chk.Change = relDiff(chk.Concept.Data(), chk.Base.Data())
	return chk, nil
}

// relDiff is ||a − b|| / ||b||.
func relDiff(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		e := float64(a[i]) - float64(b[i])
		d += e * e
		n += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(d / max(n, 1e-30))
}

// trained returns the state as a concept.
func (tr *trainer) trained() *Trained {
	t := &Trained{
		Name: tr.job.Name, Superclass: tr.job.Class, SuperclassToken: tr.classID,
		Embedding: append([]float32(nil), tr.st.Embedding...), TargetInput: append([]float32(nil), tr.st.Input...),
		Settings: tr.s,
	}
	for l, a := range tr.layers {
		t.Layers = append(t.Layers, Layer{Name: a.Name, OutK: append([]float32(nil), tr.st.OutK[l]...), OutV: append([]float32(nil), tr.st.OutV[l]...)})
	}
	return t
}
