package train

import (
	"context"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"time"

	"github.com/disintegration/imaging"
	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/photos"
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// view is one prepared training image with its cached VAE posterior.
type view struct {
	mean, std []float32 // [C, h, w]
	weight    []float32 // [h, w] loss weights from a mask, or nil
}

// trainer holds a run's fixed inputs and its state.
type trainer struct {
	job     Job
	p       *pipeline.Pipeline
	s       Settings
	classID int
	concept int    // the concept word's token id (VocabSize: the first extra row)
	d       int    // text width
	latent  [3]int // C, h, w
	views   []view
	layers  []unet.CrossAttention
	start   time.Time
	st      *state // what the resume file holds
	opt     *adamW
	held    blocks.HeldBuffers // the recomputations' float32 weight buffers, reused from pass to pass
}

func newTrainer(ctx context.Context, job Job, start time.Time) (*trainer, error) {
	p, s := job.Pipeline, job.Settings
	if p == nil {
		return nil, fmt.Errorf("train: no model")
	}
	if job.Metric == nil {
		return nil, fmt.Errorf("train: no covariance metric (C⁻¹) for the text encoder")
	}
	if err := s.Check(p.SizeMultiple()); err != nil {
		return nil, err
	}
	if job.Masks != nil && len(job.Masks) != len(job.Photos) {
		return nil, fmt.Errorf("train: %d masks for %d photos", len(job.Masks), len(job.Photos))
	}
	classID, err := SuperclassToken(p.Tokenizer, job.Class)
	if err != nil {
		return nil, err
	}
	tr := &trainer{
		job: job, p: p, s: s, classID: classID,
		concept: p.CLIP.Config.VocabSize, d: p.CLIP.Config.HiddenSize,
		layers: p.UNet.CrossAttentions(), start: start,
	}
	if len(tr.layers) == 0 {
		return nil, fmt.Errorf("train: the UNet has no cross-attention layers to edit")
	}
	if err := tr.prepare(ctx); err != nil {
		return nil, err
	}
	if err := tr.restoreOrInit(ctx); err != nil {
		return nil, err
	}
	return tr, nil
}

// report calls the job's progress callback.
func (tr *trainer) report(stage string, step, total int, loss float64, stageStart time.Time, resumed int) {
	if tr.job.Progress == nil {
		return
	}
	now := time.Now()
	var eta time.Duration
	if done := step - resumed; done > 0 {
		eta = now.Sub(stageStart) / time.Duration(done) * time.Duration(total-step)
	}
	pr := Progress{Stage: stage, Step: step, Total: total, Loss: loss, Elapsed: now.Sub(tr.start), ETA: eta, Resumed: resumed}
	if stage == StageTrain {
		pr.Snapshot = tr.trained
	}
	tr.job.Progress(pr)
}

// prepare decodes the photos and caches each view's VAE posterior (one
// encoder pass per view, for the whole run).
func (tr *trainer) prepare(ctx context.Context) error {
	stageStart := time.Now()
	vs, err := photos.Prepare(ctx, tr.job.Photos, photos.Options{Size: tr.s.Size, Flip: tr.s.Flip},
		func(done, total int) { tr.report(StagePhotos, done, total, 0, stageStart, 0) })
	if err != nil {
		return err
	}
	stageStart = time.Now()
	for i, v := range vs {
		x, err := vae.FromImages([]image.Image{v.Image}) // [1, 3, S, S]
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		post, err := tr.p.VAE.Encode(ctx, x)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("train: encode %s: %w", v.Source, err)
		}
		m := post.Mean // [1, C, h, w]
		tr.latent = [3]int{m.Dim(1), m.Dim(2), m.Dim(3)}
		cv := view{mean: m.Data(), std: post.Std.Data()}
		if mask := tr.maskOf(v); mask != nil {
			cv.weight = maskWeights(mask, v.Flipped, tr.latent[1], tr.latent[2], tr.s.MaskFloor)
		}
		tr.views = append(tr.views, cv)
		tr.report(StageLatents, i+1, len(vs), 0, stageStart, 0)
	}
	if !tr.s.AttentionMask {
		return nil
	}
	stageStart = time.Now()
	for i := range tr.views {
		if tr.views[i].weight != nil {
			continue
		}
		if tr.views[i].weight, err = tr.attentionMask(ctx, tr.views[i], uint64(i)); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		tr.report(StageMask, i+1, len(tr.views), 0, stageStart, 0)
	}
	return nil
}

// maskOf returns the mask given for a view's photo, cropped like it, or nil.
func (tr *trainer) maskOf(v photos.View) image.Image {
	for i, p := range tr.job.Photos {
		if p.Path == v.Source && tr.job.Masks != nil && tr.job.Masks[i] != nil {
			sq, err := photos.Square(tr.job.Masks[i], p.Crop, tr.s.Size)
			if err != nil {
				return nil
			}
			return sq
		}
	}
	return nil
}

// maskWeights turns a mask into loss weights [h, w]: its luminance resized
// to the latent size, mirrored for flipped views, divided by its maximum
// and floored (spec §6.4's linear weighting).
func maskWeights(mask image.Image, flipped bool, h, w int, floor float64) []float32 {
	g := imaging.Resize(imaging.Grayscale(mask), w, h, imaging.Linear)
	if flipped {
		g = imaging.FlipH(g)
	}
	out := make([]float32, h*w)
	mx := 0.0
	for i := range out {
		v := float64(g.Pix[4*i]) / 255
		out[i] = float32(v)
		mx = max(mx, v)
	}
	for i, v := range out {
		wt := float64(v)
		if mx > 0 {
			wt /= mx
		}
		out[i] = float32(max(wt, floor))
	}
	return out
}

// sample is one training sample's random choices.
type sample struct {
	view, template, t int
	latentNoise, eps  []float32 // [C, h, w] each
}

// draw returns the samples of one pass, determined by the seed, the step
// and the pass alone (so a resumed run draws what the first run would).
func (tr *trainer) draw(step, pass, n int) []sample {
	r := rand.New(rand.NewPCG(tr.s.Seed, uint64(step)<<16|uint64(pass)))
	size := tr.latent[0] * tr.latent[1] * tr.latent[2]
	out := make([]sample, n)
	for i := range out {
		out[i] = sample{
			view:        r.IntN(len(tr.views)),
			template:    r.IntN(len(tr.s.TrainingTemplates())),
			t:           r.IntN(tr.p.Schedule.T()),
			latentNoise: normals(r, size),
			eps:         normals(r, size),
		}
	}
	return out
}

func normals(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// batch lays out samples as UNet inputs: noisy latents zt [B, C, h, w],
// timesteps, targets ε, loss weights (nil without masks), and the prompt
// ids [B, 77] with the word id and its positions.
func (tr *trainer) batch(ss []sample, word int) (zt tensor.Tensor, ts []float32, eps, wts []float32, ids, pos []int, err error) {
	c, h, w := tr.latent[0], tr.latent[1], tr.latent[2]
	n := c * h * w
	scale := float64(tr.p.VAE.Config.ScaleFactor)
	x := make([]float32, len(ss)*n)
	eps = make([]float32, 0, len(ss)*n)
	masked := false
	for _, s := range ss {
		masked = masked || tr.views[s.view].weight != nil
	}
	for i, s := range ss {
		v := tr.views[s.view]
		ac := tr.p.Schedule.AlphasCumprod64[s.t]
		a, b := math.Sqrt(ac), math.Sqrt(1-ac)
		for j := range n {
			z0 := scale * (float64(v.mean[j]) + float64(v.std[j])*float64(s.latentNoise[j]))
			x[i*n+j] = float32(a*z0 + b*float64(s.eps[j]))
		}
		eps = append(eps, s.eps...)
		ts = append(ts, float32(s.t))
		if masked {
			for range c {
				if v.weight != nil {
					wts = append(wts, v.weight...)
				} else {
					for range h * w {
						wts = append(wts, 1)
					}
				}
			}
		}
		pr, err := tokenizeTemplate(tr.p.Tokenizer, tr.s.TrainingTemplates()[s.template], word)
		if err != nil {
			return tensor.Tensor{}, nil, nil, nil, nil, nil, err
		}
		ids = append(ids, pr.ids...)
		pos = append(pos, pr.pos)
	}
	zt, err = tensor.New(x, len(ss), c, h, w)
	return zt, ts, eps, wts, ids, pos, err
}

// meanAt returns the mean over the batch of enc [B, T, D] at each row's
// position pos[b].
func meanAt(enc []float32, pos []int, t, d int) []float64 {
	out := make([]float64, d)
	for b, p := range pos {
		row := enc[(b*t+p)*d : (b*t+p+1)*d]
		for j, v := range row {
			out[j] += float64(v)
		}
	}
	for j := range out {
		out[j] /= float64(len(pos))
	}
	return out
}

// concept builds the edit's view of the current state; oV[l] are the
// (parameter) value targets.
func (tr *trainer) editConcept(oV []tensor.Tensor, emb tensor.Tensor) *edit.Concept {
	c := &edit.Concept{
		Name: tr.job.Name, Embedding: emb, Input: append([]float32(nil), tr.st.Input...),
		Superclass: tr.job.Class, Beta: tr.s.GateBeta, Tau: tr.s.GateTau,
		Layers: make(map[string]edit.Targets, len(tr.layers)),
	}
	for l, a := range tr.layers {
		c.Layers[a.Name] = edit.Targets{K: tensor.MustNew(tr.st.OutK[l], len(tr.st.OutK[l])), V: oV[l]}
	}
	return c
}

// pass runs one forward and backward pass over ss and adds the gradients
// of the embedding and of each o*_V into gEmb and gV; it returns the
// pass's loss (already scaled by scale).
func (tr *trainer) pass(ctx context.Context, ss []sample, scale float64, gEmb []float32, gV [][]float32) (float64, error) {
	zt, ts, eps, wts, ids, pos, err := tr.batch(ss, tr.concept)
	if err != nil {
		return 0, err
	}
	emb, err := tensor.NewParam(tr.st.Embedding, 1, tr.d)
	if err != nil {
		return 0, err
	}
	var rc *blocks.Recompute
	if tr.s.Recomputes() {
		rc = &blocks.Recompute{Spare: &tr.held}
	}
	enc, err := encodeTextRecompute(tr.p.CLIP, ids, len(ss), emb, rc) // [B, T, D]
	if err != nil {
		return 0, fmt.Errorf("train: text encoder: %w", err)
	}
	// i* ← EMA of the concept word's encodings (no gradient through i*).
	cur := meanAt(enc.Data(), pos, enc.Dim(1), tr.d)
	for j, v := range cur {
		tr.st.Input[j] = float32(tr.s.EMA*float64(tr.st.Input[j]) + (1-tr.s.EMA)*v)
	}
	oV := make([]tensor.Tensor, len(tr.layers))
	for l := range oV {
		if oV[l], err = tensor.NewParam(tr.st.OutV[l], len(tr.st.OutV[l])); err != nil {
			return 0, err
		}
	}
	ed, err := edit.NewEditor(tr.p.Engine, enc, []*edit.Concept{tr.editConcept(oV, emb)}, tr.job.Metric, edit.Options{})
	if err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	pred, err := predictNoiseRecompute(ctx, tr.p.UNet, zt, ts, enc, ed, rc) // [B, C, h, w]
	if err != nil {
		return 0, err
	}
	loss, err := weightedMSE(pred, eps, wts, scale)
	if err != nil {
		return 0, err
	}
	tensor.AccGrad(loss.Node(), []float32{1})
	if err := ag.Backward(loss.Node()); err != nil {
		return 0, fmt.Errorf("train: backward: %w", err)
	}
	if rc != nil && rc.Err() != nil {
		return 0, fmt.Errorf("train: backward: %w", rc.Err())
	}
	if g := emb.Grad(); g != nil {
		addTo(gEmb, g)
	}
	for l, v := range oV {
		if g := v.Grad(); g != nil {
			addTo(gV[l], g)
		}
	}
	return float64(loss.Data()[0]), nil
}

func addTo(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}

// loop runs the optimizer steps from the state's step on.
func (tr *trainer) loop(ctx context.Context) error {
	s := tr.s
	passes := s.Batch / s.Micro
	every := s.CheckpointEvery
	if every == 0 {
		every = DefaultCheckpointEvery
	}
	resumed := tr.st.Step
	stageStart := time.Now()
	gEmb := make([]float32, tr.d)
	gV := make([][]float32, len(tr.layers))
	for l := range gV {
		gV[l] = make([]float32, len(tr.st.OutV[l]))
	}
	for tr.st.Step < s.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		saved := tr.st.snapshot() // a cancelled step leaves no trace
		clear(gEmb)
		for _, g := range gV {
			clear(g)
		}
		var loss float64
		for pass := range passes {
			l, err := tr.pass(ctx, tr.draw(tr.st.Step, pass, s.Micro), 1/float64(passes), gEmb, gV)
			if err != nil {
				tr.st = saved
				return err
			}
			loss += l
		}
		params := append([][]float32{tr.st.Embedding}, tr.st.OutV...)
		grads := append([][]float32{gEmb}, gV...)
		lrs := make([]float64, len(params))
		lrs[0] = s.LREmbedding
		for i := 1; i < len(lrs); i++ {
			lrs[i] = s.LRValues
		}
		if err := tr.opt.step(params, grads, lrs); err != nil {
			tr.st = saved
			return fmt.Errorf("train: step %d: %w (loss %g); try a lower learning rate", tr.st.Step+1, err, loss)
		}
		tr.st.Step++
		tr.st.Losses = append(tr.st.Losses, loss)
		tr.st.Adam = tr.opt.export()
		tr.report(StageTrain, tr.st.Step, s.Steps, loss, stageStart, resumed)
		if tr.st.Step%every == 0 && tr.st.Step < s.Steps {
			if err := tr.save(); err != nil {
				return err
			}
		}
	}
	return nil
}
