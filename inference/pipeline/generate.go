package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"time"

	"github.com/perfusion-studio/perfusion/inference/rng"
	"github.com/perfusion-studio/perfusion/inference/sampler"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// ErrNonFinite is wrapped by the error of a generation whose values became
// NaN or infinite, which would give a black image: the model's weights hold
// NaN or Inf (a damaged file) or overflow float16.
var ErrNonFinite = errors.New("NaN or infinite values: the model is damaged (NaN/Inf weights: download it again) " +
	"or its float16 weights overflow (use a float32 copy of the model)")

// firstNonFinite returns the index of the first NaN or infinite value, or
// -1. It runs once per UNet evaluation, over the latents only.
func firstNonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 { // NaN - NaN and Inf - Inf are NaN
			return i
		}
	}
	return -1
}

// DefaultSampler is the sampler of a Request that names none: CompVis
// txt2img's DDIM (eta 0).
const DefaultSampler = "ddim"

// Request is one text-to-image generation.
type Request struct {
	Prompt   string
	Negative string // the unconditional prompt of classifier-free guidance ("" as SD1.5)
	// Prompts, when set, gives each image of the batch its own prompt
	// (image i gets Prompts[i], as CompVis txt2img's prompt list), for a
	// grid or a sweep; Prompt must then be "". Negatives likewise gives
	// each image its own negative prompt in place of Negative. Each, when
	// set, fixes the batch size: BatchSize must be 0 or its length.
	Prompts   []string
	Negatives []string
	// Seed seeds torch.manual_seed: the initial noise is torch.randn([B, C,
	// h, w]) and the ancestral samplers draw from the same generator
	// afterwards. Only its low 32 bits matter.
	Seed uint64
	// Steps is the number of sampling steps (1 to the schedule's 1000).
	// DDIM runs CompVis's schedule, range(0, 1000, 1000/Steps) + 1: more
	// steps than asked when Steps does not divide 1000 (7 gives 8), and
	// without the out-of-range timestep 1000 where the reference fails (see
	// sampler.DDIMSchedule); Result.Timesteps lists the steps run.
	Steps int
	// CFG is the classifier-free guidance scale
	// (e = e_uncond + CFG*(e_cond - e_uncond)); at exactly 1 the
	// unconditional branch is skipped, since it cancels.
	CFG float32
	// Sampler is one of sampler.Names() ("ddim", "euler_a",
	// "dpmpp_2m_karras", ...); "" is DefaultSampler.
	Sampler string
	// Width and Height of the image in pixels: positive multiples of
	// SizeMultiple (64 for SD1.x), at most MaxSide.
	Width, Height int
	// BatchSize images share one noise draw (torch.randn([BatchSize,
	// ...])) and the prompt, unless Prompts gives one each; 0 means 1, or
	// len(Prompts) or len(Negatives) when set.
	BatchSize int
	// ClipSkip, Emphasis and LongPrompts: see TextOptions.
	ClipSkip    int
	Emphasis    bool
	LongPrompts bool
	// Previews asks for Progress.Preview after each step.
	Previews bool
	// Edit, when set, changes this generation's conditioning (Perfusion
	// concepts): added placeholder words and a cross-attention K/V editor,
	// applied to the unconditional rows too. nil leaves the base model's
	// output bit for bit.
	Edit ConditioningEdit
	// Encodings, when set, keeps the prompts' text encodings across
	// requests (see EncodingCache): a request that differs from an earlier
	// one only in seed, sampler, size or the edit's K/V editor (a concept's
	// gate) does not run the text encoder again. The image is the same bit
	// for bit.
	Encodings *EncodingCache
}

// Progress reports one finished sampling step.
type Progress struct {
	Step, Total int           // 1-based step, and the step count
	Elapsed     time.Duration // since Generate started
	ETA         time.Duration // estimated time left for the remaining steps
	// Preview is a fast approximation of the first image at latent
	// resolution, from the current clean-latent estimate (vae.SD15Preview);
	// nil unless Request.Previews, or for a model whose latents it does not
	// fit.
	Preview *image.RGBA
}

// Result is a finished generation.
type Result struct {
	Images    []*image.RGBA // BatchSize images, Width x Height
	Latents   tensor.Tensor // [B, C, h, w] final latents (diffusion scale)
	Decoded   tensor.Tensor // [B, 3, H, W] VAE output in about [-1, 1], before clamping
	Timesteps []float64     // the model timestep of each step
	Elapsed   time.Duration
}

// text returns the request's text options.
func (r Request) text() TextOptions {
	return TextOptions{ClipSkip: r.ClipSkip, Emphasis: r.Emphasis, LongPrompts: r.LongPrompts, Cache: r.Encodings}
}

// batch is the number of images the request asks for (0 when its sizes
// disagree, which check reports).
func (r Request) batch() int {
	b := r.BatchSize
	for _, n := range []int{len(r.Prompts), len(r.Negatives)} {
		switch {
		case n == 0:
		case b == 0:
			b = n
		case b != n:
			return 0
		}
	}
	return max(b, 1)
}

// rows returns the prompt and the negative prompt of each image of a batch
// of b.
func (r Request) rows(b int) (prompts, negatives []string) {
	prompts, negatives = r.Prompts, r.Negatives
	if len(prompts) == 0 {
		prompts = slices.Repeat([]string{r.Prompt}, b)
	}
	if len(negatives) == 0 {
		negatives = slices.Repeat([]string{r.Negative}, b)
	}
	return prompts, negatives
}

// check explains what is wrong with a request.
func (p *Pipeline) check(r Request) error {
	if err := p.checkSize(r.Width, r.Height); err != nil {
		return err
	}
	if t := p.Schedule.T(); r.Steps < 1 || r.Steps > t {
		return fmt.Errorf("pipeline: %d steps: want 1 to %d", r.Steps, t)
	}
	if r.BatchSize < 0 || r.BatchSize > MaxBatch {
		return fmt.Errorf("pipeline: batch size %d: want 1 to %d", r.BatchSize, MaxBatch)
	}
	if len(r.Prompts) > 0 && r.Prompt != "" {
		return fmt.Errorf("pipeline: both Prompt and %d per-image Prompts are set: use one", len(r.Prompts))
	}
	if r.batch() == 0 {
		return fmt.Errorf("pipeline: batch size %d, %d prompts and %d negative prompts: give one prompt per image", r.BatchSize, len(r.Prompts), len(r.Negatives))
	}
	if b := r.batch(); b > MaxBatch {
		return fmt.Errorf("pipeline: %d prompts: want at most %d (MaxBatch)", b, MaxBatch)
	}
	if f := float64(r.CFG); math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("pipeline: guidance scale %g is not a number", f)
	}
	return nil
}

// Generate runs one text-to-image generation: encode the prompt and the
// negative prompt, draw the initial noise from the seed, sample with
// classifier-free guidance, and decode with the VAE. progress (may be nil)
// is called after every step, unthrottled. Generate returns ctx.Err() once
// ctx is cancelled, checked between steps and inside the models.
func (p *Pipeline) Generate(ctx context.Context, r Request, progress func(Progress)) (*Result, error) {
	start := time.Now()
	if err := p.check(r); err != nil {
		return nil, err
	}
	name := r.Sampler
	if name == "" {
		name = DefaultSampler
	}
	b := r.batch()
	c := p.UNet.Config.InChannels
	lh, lw := r.Height/p.latentFactor(), r.Width/p.latentFactor()
	n := c * lh * lw // values of one latent

	guided := r.CFG != 1
	cond, editor, err := p.conditioning(ctx, r, b, guided) // [2B or B, T, D]
	if err != nil {
		return nil, err
	}

	g := rng.New(r.Seed)
	xT := g.Randn(b * n) // [B, C, h, w]
	p.trace.emit("x_T", 0, xT)
	s, err := sampler.New(name, p.Schedule, r.Steps, g.Randn)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}

	call := 0
	eps := func(ctx context.Context, x []float32, t float64) ([]float32, error) {
		defer func() { call++ }()
		in, rows := x, b // [B, C, h, w]
		if guided {
			in = make([]float32, 2*len(x)) // [2B, C, h, w]: x; x
			copy(in, x)
			copy(in[len(x):], x)
			rows = 2 * b
		}
		ts := make([]float32, rows)
		for i := range ts {
			ts[i] = float32(t)
		}
		out, err := p.UNet.Forward(ctx, tensor.MustNew(in, rows, c, lh, lw), ts, cond, unet.Call{Editor: editor}) // [rows, C, h, w]
		if err != nil {
			return nil, err
		}
		e := out.Data()
		if i := firstNonFinite(e); i >= 0 {
			return nil, fmt.Errorf("the UNet gave %v at its evaluation %d (timestep %g): %w", e[i], call+1, t, ErrNonFinite)
		}
		if !guided {
			p.trace.emit("eps_cond", call, e)
			return e, nil
		}
		eu, ec := e[:len(x)], e[len(x):] // uncond half first, as CompVis cat([uc, c])
		p.trace.emit("eps_uncond", call, eu)
		p.trace.emit("eps_cond", call, ec)
		return sampler.CFG(eu, ec, r.CFG), nil
	}

	sampleStart := time.Now()
	onStep := func(step, total int, x, denoised []float32) {
		p.trace.emit("x", step-1, x)
		p.trace.emit("pred_x0", step-1, denoised)
		if progress == nil {
			return
		}
		now := time.Now()
		per := now.Sub(sampleStart) / time.Duration(step)
		pr := Progress{Step: step, Total: total, Elapsed: now.Sub(start), ETA: per * time.Duration(total-step)}
		if r.Previews {
			pr.Preview = p.preview(denoised[:n], lh, lw)
		}
		progress(pr)
	}
	final, err := sampler.Sample(ctx, s, eps, xT, onStep)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pipeline: %w", err)
	}

	if i := firstNonFinite(final); i >= 0 {
		return nil, fmt.Errorf("pipeline: the sampled latents hold %v: %w", final[i], ErrNonFinite)
	}
	latents, err := tensor.New(final, b, c, lh, lw) // [B, C, h, w]
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	p.UNet.ReleaseActivations()            // the decoder's memory, not the UNet's idle buffers (see MemoryBudget)
	decoded, err := p.decode(ctx, latents) // [B, 3, H, W]
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pipeline: decode: %w", err)
	}
	p.trace.emit("decoded", 0, decoded.Data())
	if i := firstNonFinite(decoded.Data()); i >= 0 {
		return nil, fmt.Errorf("pipeline: the VAE decoder gave %v: %w", decoded.Data()[i], ErrNonFinite)
	}
	images, err := vae.ToImages(decoded)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	return &Result{Images: images, Latents: latents, Decoded: decoded, Timesteps: s.Timesteps(), Elapsed: time.Since(start)}, nil
}

// decode runs the VAE decoder on latents [B, C, h, w] one image at a time:
// its full-resolution activations are the largest of a generation (see
// ActivationBytes), and decoding a batch at once would hold B times them.
func (p *Pipeline) decode(ctx context.Context, latents tensor.Tensor) (tensor.Tensor, error) {
	b := latents.Dim(0)
	if b == 1 {
		return p.VAE.DecodeLatents(ctx, latents) // [1, 3, H, W]
	}
	n := latents.Size() / b
	var out []float32
	var img tensor.Tensor
	for i := range b {
		one := tensor.MustNew(latents.Data()[i*n:(i+1)*n], 1, latents.Dim(1), latents.Dim(2), latents.Dim(3)) // [1, C, h, w]
		var err error
		if img, err = p.VAE.DecodeLatents(ctx, one); err != nil { // [1, 3, H, W]
			return tensor.Tensor{}, err
		}
		if out == nil {
			out = make([]float32, 0, b*img.Size())
		}
		out = append(out, img.Data()...)
	}
	return tensor.New(out, b, img.Dim(1), img.Dim(2), img.Dim(3)) // [B, 3, H, W]
}

// conditioning encodes the request's prompts into the UNet context: with
// guidance [2B, T, D] = cat(uncond rows, cond rows) (CompVis's order), else
// [B, T, D] of the prompts. Each distinct prompt is encoded once. With a
// Request.Edit it also returns the edit's K/V editor (nil without).
func (p *Pipeline) conditioning(ctx context.Context, r Request, b int, guided bool) (tensor.Tensor, unet.KVEditor, error) {
	prompts, negatives := r.rows(b)
	var unique []string
	index := map[string]int{}
	for _, text := range slices.Concat(negatives, prompts) {
		if _, ok := index[text]; !ok {
			index[text] = len(unique)
			unique = append(unique, text)
		}
	}
	opt := r.text()
	if r.Edit != nil {
		opt.Words, opt.Embeddings = r.Edit.Words()
	}
	encs, err := p.EncodePrompts(ctx, unique, opt) // each [1, T, D], one T
	if err != nil {
		return tensor.Tensor{}, nil, err
	}
	rowsOf := func(texts []string) []int {
		out := make([]int, len(texts))
		for i, text := range texts {
			out[i] = index[text]
		}
		return out
	}
	uncondRows, condRows := rowsOf(negatives), rowsOf(prompts)
	if p.trace != nil {
		uc, err := stackRows(encs, uncondRows) // [B, T, D]
		if err != nil {
			return tensor.Tensor{}, nil, err
		}
		cc, err := stackRows(encs, condRows) // [B, T, D]
		if err != nil {
			return tensor.Tensor{}, nil, err
		}
		p.trace.emit("uncond_embedding", 0, uc.Data())
		p.trace.emit("cond_embedding", 0, cc.Data())
	}
	rows := condRows // the prompt of each UNet row
	if guided {
		rows = slices.Concat(uncondRows, condRows)
	}
	cond, err := stackRows(encs, rows) // [2B or B, T, D]
	if err != nil || r.Edit == nil {
		return cond, nil, err
	}
	ed, err := p.editor(ctx, r.Edit, cond, encs, rows, opt)
	return cond, ed, err
}

// preview maps one clean-latent estimate [C, h, w] to an approximate RGB
// image, or nil when the SD1.x factors do not fit the latent channels.
func (p *Pipeline) preview(latent []float32, h, w int) *image.RGBA {
	pv := vae.SD15Preview()
	if len(pv.Factors) != p.UNet.Config.InChannels {
		return nil
	}
	rgb, err := pv.RGB(tensor.MustNew(latent, 1, len(pv.Factors), h, w)) // [1, 3, h, w]
	if err != nil {
		return nil
	}
	img, err := vae.ToRGBA(rgb, 0)
	if err != nil {
		return nil
	}
	return img
}

// tracer receives intermediate values in tests; nil does nothing.
type tracer func(name string, step int, v []float32)

func (t tracer) emit(name string, step int, v []float32) {
	if t != nil {
		t(name, step, v)
	}
}
