package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/perfusion-studio/perfusion/assets/internal/tinysd"
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/sampler"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Data is a captioned image set: item i on background bg, as planes
// [3, S, S] in [-1, 1], with caption variant v.
type Data interface {
	Len() int
	Backgrounds() int
	Variants() int
	Image(i, bg int) []float32
	Caption(i, bg, v int) string
}

// Options set a run. Steps are counted per phase; a run with a
// checkpoint resumes where it stopped.
type Options struct {
	Seed            uint64
	VAESteps        int     // autoencoder steps
	UNetSteps       int     // text encoder + UNet steps
	VAEBatch        int     // images a VAE step
	UNetBatch       int     // images a UNet step
	VAELR, UNetLR   float64 // peak learning rates
	Warmup          int     // warm-up steps of each phase
	KLWeight        float64 // weight of the KL term against the per-pixel MSE
	CaptionDrop     float64 // probability of an empty caption (for classifier-free guidance)
	MinSNR          float64 // γ of the Min-SNR loss weight min(SNR, γ)/SNR (<= 0: plain MSE)
	EMADecay        float64 // decay of the exported moving average of the UNet phase's weights (<= 0: none)
	Checkpoint      string  // state file path ("" for none)
	CheckpointEvery int     // steps between checkpoints (and one at every stop)
	MaxSteps        int     // stop after this many steps in this call (<= 0: no limit)
	Engine          *ops.Engine
	// Replicas, when it holds two or more engines, runs both phases
	// data-parallel: each engine gets its own copy of the models trained
	// over the same weights (one set of slices) and an equal share of
	// every batch, the shares run at once, and their gradients are summed
	// before the update. Give each engine one thread: this model's layers
	// are too small to split well across cores (a step keeps two cores
	// busier this way than with one engine of two threads). The batch,
	// noise and captions drawn are the same as with one engine; only the
	// order of float additions differs.
	Replicas []*ops.Engine
	Log      func(format string, args ...any) // progress lines; nil: none

	// PlainSteps and PlainBackgrounds narrow the start of the UNet phase:
	// its steps before PlainSteps draw only background indices below
	// PlainBackgrounds (0: every step draws from all). With placements
	// (mkdefault), the first indices are the emoji as the data set draws
	// them, so the text encoder and UNet learn on those first.
	PlainSteps, PlainBackgrounds int
}

// DefaultOptions is the plan of assets/README.md: the committed model's
// recipe and seed (the eleventh run).
func DefaultOptions() Options {
	return Options{
		Seed: 20251206, VAESteps: 1500, UNetSteps: 19000, VAEBatch: 16, UNetBatch: 32,
		VAELR: 1e-3, UNetLR: 5e-4, Warmup: 100, KLWeight: 1e-4, CaptionDrop: 0.1,
		MinSNR: 5, EMADecay: 0.999, CheckpointEvery: 50,
	}
}

// ErrStopped is returned when MaxSteps ends a call before training is done.
var ErrStopped = errors.New("train: stopped after the requested steps")

// Run trains cfg's model on data with tok's ids: the VAE, then the text
// encoder and UNet. It resumes from opt.Checkpoint when that file exists,
// and saves it every CheckpointEvery steps and when ctx is cancelled. It
// returns the final state (Phase PhaseDone; Weights hold the model and
// ScaleFactor its latent scale).
func Run(ctx context.Context, cfg tinysd.Config, tok *tokenizer.Tokenizer, data Data, opt Options) (*State, error) {
	if opt.Engine == nil {
		opt.Engine = ops.CPU()
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	if data.Len() == 0 || opt.VAEBatch <= 0 || opt.UNetBatch <= 0 {
		return nil, fmt.Errorf("train: %d items, batches %d and %d", data.Len(), opt.VAEBatch, opt.UNetBatch)
	}
	if !(opt.VAELR > 0 && opt.VAELR < 1) || !(opt.UNetLR > 0 && opt.UNetLR < 1) {
		return nil, fmt.Errorf("train: learning rates %g and %g: want each above 0 and below 1", opt.VAELR, opt.UNetLR)
	}
	if n := len(opt.Replicas); n >= 2 && (opt.VAEBatch%n != 0 || opt.UNetBatch%n != 0) {
		return nil, fmt.Errorf("train: batches of %d and %d do not split evenly over %d replicas", opt.VAEBatch, opt.UNetBatch, n)
	}
	if opt.PlainSteps < 0 || opt.PlainBackgrounds < 0 || opt.PlainBackgrounds > data.Backgrounds() || (opt.PlainSteps > 0) != (opt.PlainBackgrounds > 0) {
		return nil, fmt.Errorf("train: plain steps %d on %d of %d backgrounds: want both 0, or both above 0 and at most all backgrounds", opt.PlainSteps, opt.PlainBackgrounds, data.Backgrounds())
	}
	st, err := start(cfg, opt, data.Len()*data.Backgrounds())
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, tok: tok, data: data, opt: opt, st: st, e: opt.Engine}
	for st.Phase != PhaseDone {
		switch st.Phase {
		case PhaseVAE:
			err = r.vaePhase(ctx)
		case PhaseUNet:
			err = r.unetPhase(ctx)
		default:
			err = fmt.Errorf("train: unknown phase %q in the checkpoint", st.Phase)
		}
		if err != nil {
			if serr := r.save(); serr != nil {
				return nil, errors.Join(err, serr)
			}
			return st, err
		}
	}
	return st, r.save()
}

// start loads the checkpoint or initialises a new run on images
// training images (data.Len() × data.Backgrounds()).
func start(cfg tinysd.Config, opt Options, images int) (*State, error) {
	shapes, err := cfg.Tensors()
	if err != nil {
		return nil, err
	}
	if opt.Checkpoint != "" {
		if _, err := os.Stat(opt.Checkpoint); err == nil {
			st, err := LoadState(opt.Checkpoint)
			if err != nil {
				return nil, err
			}
			if st.Seed != opt.Seed {
				return nil, fmt.Errorf("train: %s was started with seed %d, not %d: delete it to start over", opt.Checkpoint, st.Seed, opt.Seed)
			}
			if st.Images != 0 && st.Images != images {
				return nil, fmt.Errorf("train: %s was started on %d training images, not %d (another data set, or another number of placements): delete it to start over", opt.Checkpoint, st.Images, images)
			}
			if st.PlainSteps != opt.PlainSteps || st.PlainBackgrounds != opt.PlainBackgrounds {
				return nil, fmt.Errorf("train: %s was started with its first %d UNet steps on %d backgrounds, not %d on %d: delete it to start over, or resume with its settings", opt.Checkpoint, st.PlainSteps, st.PlainBackgrounds, opt.PlainSteps, opt.PlainBackgrounds)
			}
			st.Images = images
			for k, sh := range shapes {
				if !reflect.DeepEqual(st.Weights[k].Shape, sh) {
					return nil, fmt.Errorf("train: %s does not fit the model (%s is %v, want %v): delete it to start over", opt.Checkpoint, k, st.Weights[k].Shape, sh)
				}
			}
			return st, nil
		}
	}
	w, err := cfg.Init(opt.Seed)
	if err != nil {
		return nil, err
	}
	return &State{Phase: PhaseVAE, Seed: opt.Seed, Images: images, PlainSteps: opt.PlainSteps, PlainBackgrounds: opt.PlainBackgrounds, Weights: w, Opt: NewAdamW()}, nil
}

type runner struct {
	cfg  tinysd.Config
	tok  *tokenizer.Tokenizer
	data Data
	opt  Options
	st   *State
	e    *ops.Engine
	done int // steps done in this call

	// latents caches the frozen encoder's posterior of every training
	// image in the UNet phase: item i on background bg at
	// (i*Backgrounds()+bg)*2*per, mean then std, per values each.
	latents []float32
	per     int
}

func (r *runner) save() error {
	if r.opt.Checkpoint == "" {
		return nil
	}
	return r.st.Save(r.opt.Checkpoint)
}

// rng is the random source of one step: a function of seed, phase, step.
func (r *runner) rng(phase uint64, step int) *rand.Rand {
	return rand.New(rand.NewPCG(r.st.Seed, phase<<40|uint64(step)))
}

// params returns a phase's trainable tensors, sorted by key.
func params(m map[string]tensor.Tensor) []Param {
	out := make([]Param, 0, len(m))
	for k, t := range m {
		out = append(out, Param{k, t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// batch draws a batch: items, and backgrounds below nbg.
func (r *runner) batch(rng *rand.Rand, b, nbg int) (items, bgs []int) {
	for range b {
		items, bgs = append(items, rng.IntN(r.data.Len())), append(bgs, rng.IntN(nbg))
	}
	return items, bgs
}

// pixels are the batch's images [B, 3, S, S].
func (r *runner) pixels(items, bgs []int) []float32 {
	var x []float32
	for k, i := range items {
		x = append(x, r.data.Image(i, bgs[k])...)
	}
	return x
}

func randn(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// after is the bookkeeping of a finished step shared by the phases:
// logging (first is the phase's first step in this call, at time t0),
// checkpoints, limits.
func (r *runner) after(ctx context.Context, phase string, first, step, total int, loss float64, norm float64, t0 time.Time) error {
	r.st.Step = step + 1
	r.done++
	if (step+1)%10 == 0 || step+1 == total || r.done <= 5 {
		per := time.Since(t0).Seconds() / float64(step+1-first)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r.opt.Log("%s step %d/%d loss %.5f grad norm %.3f, %.2f s/step, %s left in this phase, heap %d MB",
			phase, step+1, total, loss, norm, per, time.Duration(per*float64(total-step-1))*time.Second, ms.HeapAlloc>>20)
	}
	if r.opt.CheckpointEvery > 0 && (step+1)%r.opt.CheckpointEvery == 0 {
		if err := r.save(); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.opt.MaxSteps > 0 && r.done >= r.opt.MaxSteps {
		return ErrStopped
	}
	return nil
}

func (r *runner) vaePhase(ctx context.Context) error {
	engines := r.engines()
	ms := make([]*vae.Model, len(engines))
	ps := make([][]Param, len(engines))
	for k, e := range engines {
		pm := map[string]tensor.Tensor{}
		m, err := vae.Load(e, r.st.Weights, r.cfg.VAE, blocks.LoadOptions{Params: pm})
		if err != nil {
			return fmt.Errorf("train: vae: %w", err)
		}
		ms[k], ps[k] = m, params(pm)
	}
	first := r.st.Step
	t0 := time.Now()
	for step := r.st.Step; step < r.opt.VAESteps; step++ {
		in := r.vaeInputs(step)
		figs, err := shares(in.b, ps, func(k, lo, hi int, seed float32) ([]float64, error) {
			loss, rec, err := vaeLoss(ctx, ms[k], in.share(lo, hi), r.opt.KLWeight)
			if err != nil {
				return nil, err
			}
			if err := backwardFrom(loss, seed); err != nil {
				return nil, err
			}
			return []float64{float64(rec.Data()[0])}, nil
		})
		if err != nil {
			return fmt.Errorf("train: vae step %d: %w", step, err)
		}
		norm := r.st.Opt.Update(ps[0], Schedule(r.opt.VAELR, step, r.opt.Warmup, r.opt.VAESteps))
		if err := r.after(ctx, "vae", first, step, r.opt.VAESteps, figs[0], norm, t0); err != nil {
			return err
		}
	}
	scale, err := r.latentScale(ctx)
	if err != nil {
		return err
	}
	r.opt.Log("vae done: latent scale factor %.5f", scale)
	r.st.ScaleFactor = scale
	r.st.Phase, r.st.Step, r.st.Opt = PhaseUNet, 0, NewAdamW()
	return r.save()
}

// latentScale is 1 / the standard deviation of the posterior means of up
// to 256 fixed images (Rombach et al. rescale latents to unit variance).
func (r *runner) latentScale(ctx context.Context) (float32, error) {
	m, err := vae.Load(r.e, r.st.Weights, r.cfg.VAE)
	if err != nil {
		return 0, fmt.Errorf("train: vae: %w", err)
	}
	var sum, sq float64
	n := 0
	s := r.cfg.ImageSize
	for k := 0; k < min(256, r.data.Len()*r.data.Backgrounds()); k += 16 {
		var x []float32
		for j := k; j < k+16; j++ {
			x = append(x, r.data.Image(j%r.data.Len(), j%r.data.Backgrounds())...)
		}
		post, err := m.Encode(ctx, tensor.MustNew(x, 16, 3, s, s))
		if err != nil {
			return 0, fmt.Errorf("train: latent scale: %w", err)
		}
		for _, v := range post.Mean.Data() {
			sum += float64(v)
			sq += float64(v) * float64(v)
			n++
		}
	}
	mean := sum / float64(n)
	std := math.Sqrt(max(sq/float64(n)-mean*mean, 1e-12))
	return float32(1 / std), nil
}

func (r *runner) unetPhase(ctx context.Context) error {
	reps, err := r.loadReplicas(r.engines())
	if err != nil {
		return err
	}
	ae, err := vae.Load(r.e, r.st.Weights, r.cfg.VAE) // frozen
	if err != nil {
		return fmt.Errorf("train: vae: %w", err)
	}
	if err := r.cacheLatents(ctx, ae); err != nil {
		return err
	}
	ps, first := reps[0].ps, r.st.Step
	t0 := time.Now()
	for step := r.st.Step; step < r.opt.UNetSteps; step++ {
		in, err := r.unetInputs(ctx, ae, step)
		if err != nil {
			return err
		}
		loss, err := r.unetPass(ctx, reps, in)
		if err != nil {
			return fmt.Errorf("train: unet step %d: %w", step, err)
		}
		norm := r.st.Opt.Update(ps, Schedule(r.opt.UNetLR, step, r.opt.Warmup, r.opt.UNetSteps))
		if r.opt.EMADecay > 0 {
			r.st.UpdateEMA(ps, r.opt.EMADecay)
		}
		if err := r.after(ctx, "unet", first, step, r.opt.UNetSteps, loss, norm, t0); err != nil {
			return err
		}
	}
	r.st.UseEMA()
	r.st.Phase, r.st.Step = PhaseDone, 0
	return nil
}

// replica is one data-parallel copy of the UNet phase's models; every
// replica's parameters share the state's weight slices.
type replica struct {
	te *clip.Model
	un *unet.Model
	ps []Param // sorted by name, as params returns them
}

// engines are the engines a training step runs on: the replicas, or the
// one engine.
func (r *runner) engines() []*ops.Engine {
	if len(r.opt.Replicas) >= 2 {
		return r.opt.Replicas
	}
	return []*ops.Engine{r.e}
}

// loadReplicas loads the text encoder and the UNet on each engine, all
// over the state's weights, for training.
func (r *runner) loadReplicas(engines []*ops.Engine) ([]replica, error) {
	reps := make([]replica, len(engines))
	for i, e := range engines {
		pm := map[string]tensor.Tensor{}
		te, err := clip.Load(e, r.st.Weights, r.cfg.CLIP, blocks.LoadOptions{Params: pm})
		if err != nil {
			return nil, fmt.Errorf("train: text encoder: %w", err)
		}
		un, err := unet.Load(e, r.st.Weights, r.cfg.UNet, blocks.LoadOptions{Params: pm})
		if err != nil {
			return nil, fmt.Errorf("train: unet: %w", err)
		}
		reps[i] = replica{te: te, un: un, ps: params(pm)}
	}
	return reps, nil
}

// shares runs pass on each of len(ps) equal shares [lo, hi) of a batch
// of b samples at once (one goroutine each; share k's model holds the
// parameters ps[k]), leaves the whole batch's gradient in ps[0] and
// returns the batch's figures. Each share's figures are means over its
// samples, so share k's backward pass is seeded with its fraction of the
// batch (seed), and the batch's figures are the shares' means.
func shares(b int, ps [][]Param, pass func(k, lo, hi int, seed float32) ([]float64, error)) ([]float64, error) {
	n := len(ps)
	if b%n != 0 {
		return nil, fmt.Errorf("a batch of %d does not split evenly over %d replicas", b, n)
	}
	per := b / n
	figs := make([][]float64, n)
	errs := make([]error, n)
	run := func(k int) {
		figs[k], errs[k] = pass(k, k*per, (k+1)*per, float32(per)/float32(b))
	}
	if n == 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for k := range n {
			wg.Go(func() { run(k) })
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		for _, rp := range ps {
			for _, p := range rp {
				p.T.ZeroGrad()
			}
		}
		return nil, err
	}
	out := make([]float64, len(figs[0]))
	for _, f := range figs {
		for i, v := range f {
			out[i] += v / float64(n)
		}
	}
	for _, rp := range ps[1:] {
		for i, p := range rp {
			if g := p.T.Grad(); g != nil {
				addGrad(ps[0][i].T, g)
			}
			p.T.ZeroGrad()
		}
	}
	return out, nil
}

// unetPass runs the forward and backward passes of one step's batch split
// over the replicas (shares) and returns the batch's loss.
func (r *runner) unetPass(ctx context.Context, reps []replica, in unetBatch) (float64, error) {
	ps := make([][]Param, len(reps))
	for k, rp := range reps {
		ps[k] = rp.ps
	}
	figs, err := shares(in.b, ps, func(k, lo, hi int, seed float32) ([]float64, error) {
		loss, err := denoiseLoss(ctx, reps[k].te, reps[k].un, in.share(lo, hi))
		if err != nil {
			return nil, err
		}
		if err := backwardFrom(loss, seed); err != nil {
			return nil, err
		}
		return []float64{float64(loss.Data()[0])}, nil
	})
	if err != nil {
		return 0, err
	}
	return figs[0], nil
}

// addGrad adds g into t's gradient.
func addGrad(t tensor.Tensor, g []float32) {
	if dst := t.Grad(); dst != nil {
		for i, v := range g {
			dst[i] += v
		}
		return
	}
	tensor.AccGrad(t.Node(), append([]float32(nil), g...))
}

// cacheLatents encodes every training image once with the frozen encoder
// (the UNet phase then samples its latents from the cached posteriors
// instead of running the encoder each step).
func (r *runner) cacheLatents(ctx context.Context, ae *vae.Model) error {
	t0 := time.Now()
	n, nb, s := r.data.Len(), r.data.Backgrounds(), r.cfg.ImageSize
	const chunk = 32
	for k := 0; k < n*nb; k += chunk {
		var x []float32
		m := min(chunk, n*nb-k)
		for j := k; j < k+m; j++ {
			x = append(x, r.data.Image(j/nb, j%nb)...)
		}
		post, err := ae.Encode(ctx, tensor.MustNew(x, m, 3, s, s))
		if err != nil {
			return fmt.Errorf("train: cache latents: %w", err)
		}
		if r.latents == nil {
			r.per = post.Mean.Size() / m
			r.latents = make([]float32, 0, n*nb*2*r.per)
		}
		mean, std := post.Mean.Data(), post.Std.Data()
		for j := range m {
			r.latents = append(r.latents, mean[j*r.per:(j+1)*r.per]...)
			r.latents = append(r.latents, std[j*r.per:(j+1)*r.per]...)
		}
	}
	if r.opt.Log != nil { // nil for runners tests make without Run
		r.opt.Log("latents of %d images cached in %s (%d MB)", n*nb, time.Since(t0).Round(time.Millisecond), 4*len(r.latents)>>20)
	}
	return nil
}

// Model returns the trained weights (their moving average where the
// state keeps one) and the config with its latent scale.
func (s *State) Model(cfg tinysd.Config) (tinysd.Config, weights.Map) {
	cfg.VAE.ScaleFactor = s.ScaleFactor
	if len(s.EMA) == 0 {
		return cfg, s.Weights
	}
	w := weights.Map{}
	for k, t := range s.Weights {
		if avg, ok := s.EMA[k]; ok {
			t = weights.Tensor{Data: avg, Shape: t.Shape}
		}
		w[k] = t
	}
	return cfg, w
}

// vaeBatch is one VAE step's inputs: b images [b, 3, S, S] and the
// noise of their posterior samples [b, E, h, w].
type vaeBatch struct {
	b, size  int
	x, noise []float32
}

// share returns images [lo, hi) of the batch (views, not copies).
func (in vaeBatch) share(lo, hi int) vaeBatch {
	px, pn := len(in.x)/in.b, len(in.noise)/in.b
	return vaeBatch{b: hi - lo, size: in.size, x: in.x[lo*px : hi*px], noise: in.noise[lo*pn : hi*pn]}
}

// vaeInputs draws step's batch from the step's rng.
func (r *runner) vaeInputs(step int) vaeBatch {
	b, s, h := r.opt.VAEBatch, r.cfg.ImageSize, r.cfg.LatentSize()
	rng := r.rng(1, step)
	x := r.pixels(r.batch(rng, b, r.data.Backgrounds()))
	return vaeBatch{b: b, size: s, x: x, noise: randn(rng, b*r.cfg.VAE.EmbedDim*h*h)}
}

// vaeLoss is the VAE loss of a batch: per-pixel MSE of the
// reconstruction from a posterior sample, plus klWeight times the KL
// term; rec is the MSE alone.
func vaeLoss(ctx context.Context, m *vae.Model, in vaeBatch, klWeight float64) (loss, rec tensor.Tensor, err error) {
	post, err := m.Encode(ctx, tensor.MustNew(in.x, in.b, 3, in.size, in.size)) // moments [B, 2E, h, w]
	if err != nil {
		return loss, rec, err
	}
	if post.Moments.Size() != 2*len(in.noise) {
		return loss, rec, fmt.Errorf("posterior of %d values for %d noise values", post.Moments.Size(), len(in.noise))
	}
	z, err := Sample(post.Moments, in.noise) // [B, E, h, w]
	if err != nil {
		return loss, rec, err
	}
	y, err := m.Decode(ctx, z) // [B, 3, S, S]
	if err != nil {
		return loss, rec, err
	}
	if rec, err = MSE(y, in.x); err != nil {
		return loss, rec, err
	}
	kl, err := KL(post.Moments)
	if err != nil {
		return loss, rec, err
	}
	loss, err = Sum([]tensor.Tensor{rec, kl}, []float32{1, float32(klWeight)})
	return loss, rec, err
}

// unetBatch is one UNet step's inputs: b samples of noisy latents xt
// [b, E, h, w] (shape), their timesteps, the noise to predict, Min-SNR
// weights and 77 token ids each.
type unetBatch struct {
	b                  int
	ids                []int
	xt, noise, ts, wts []float32
	shape              []int
}

// share returns samples [lo, hi) of the batch (views, not copies).
func (in unetBatch) share(lo, hi int) unetBatch {
	per := len(in.xt) / in.b
	shape := append([]int{hi - lo}, in.shape[1:]...)
	return unetBatch{
		b: hi - lo, ids: in.ids[lo*tokenizer.ContextLen : hi*tokenizer.ContextLen],
		xt: in.xt[lo*per : hi*per], noise: in.noise[lo*per : hi*per],
		ts: in.ts[lo:hi], wts: in.wts[lo:hi], shape: shape,
	}
}

// unetInputs draws step's batch: items, captions (empty with probability
// CaptionDrop), latents, timesteps and noise, all from the step's rng.
func (r *runner) unetInputs(ctx context.Context, ae *vae.Model, step int) (unetBatch, error) {
	acp := sampler.SD15().AlphasCumprod64
	b := r.opt.UNetBatch
	rng := r.rng(2, step)
	nbg := r.data.Backgrounds()
	if step < r.opt.PlainSteps {
		nbg = r.opt.PlainBackgrounds
	}
	items, bgs := r.batch(rng, b, nbg)
	var ids []int
	for k := range items {
		caption := ""
		if rng.Float64() >= r.opt.CaptionDrop {
			caption = r.data.Caption(items[k], bgs[k], rng.IntN(r.data.Variants()))
		}
		ids = append(ids, r.tok.IDs77(caption)...)
	}
	x0, err := r.latentSample(ctx, ae, items, bgs, rng) // [B, E, h, w]
	if err != nil {
		return unetBatch{}, fmt.Errorf("train: unet step %d: %w", step, err)
	}
	noise := randn(rng, x0.Size())
	ts := make([]float32, b)
	wts := make([]float32, b)
	xt := make([]float32, x0.Size())
	per := x0.Size() / b
	for k := range b {
		t := rng.IntN(len(acp))
		ts[k] = float32(t)
		wts[k] = 1
		if snr := acp[t] / (1 - acp[t]); r.opt.MinSNR > 0 {
			wts[k] = float32(min(snr, r.opt.MinSNR) / snr)
		}
		a, c := math.Sqrt(acp[t]), math.Sqrt(1-acp[t])
		for j := k * per; j < (k+1)*per; j++ {
			xt[j] = float32(a*float64(r.st.ScaleFactor*x0.Data()[j]) + c*float64(noise[j]))
		}
	}
	return unetBatch{b: b, ids: ids, xt: xt, noise: noise, ts: ts, wts: wts, shape: x0.Shape()}, nil
}

// unetLoss is the denoising loss of step's batch (Ho et al., "Denoising
// Diffusion Probabilistic Models", 2020: MSE between the UNet's eps and
// the noise added at a uniform timestep of SD1.5's schedule), each
// sample weighted by min(SNR, γ)/SNR when MinSNR is γ > 0 (Hang et al.,
// "Efficient Diffusion Training via Min-SNR Weighting Strategy", 2023:
// the nearly clean timesteps, where the caption matters least, no longer
// dominate the gradient), with captions dropped at rate CaptionDrop.
func (r *runner) unetLoss(ctx context.Context, te *clip.Model, un *unet.Model, ae *vae.Model, step int) (tensor.Tensor, error) {
	in, err := r.unetInputs(ctx, ae, step)
	if err != nil {
		return tensor.Tensor{}, err
	}
	return denoiseLoss(ctx, te, un, in)
}

// denoiseLoss runs the text encoder and the UNet on a batch and returns
// the weighted MSE of the predicted noise.
func denoiseLoss(ctx context.Context, te *clip.Model, un *unet.Model, in unetBatch) (tensor.Tensor, error) {
	cond, err := te.Forward(in.ids, in.b) // [b, T, D]
	if err != nil {
		return tensor.Tensor{}, err
	}
	eps, err := un.Forward(ctx, tensor.MustNew(in.xt, in.shape...), in.ts, cond) // [b, E, h, w]
	if err != nil {
		return tensor.Tensor{}, err
	}
	return WeightedMSE(eps, in.noise, in.wts)
}

// latentSample draws the batch's latents [B, E, h, w] from the frozen
// encoder's cached posteriors (cacheLatents, run on first use).
func (r *runner) latentSample(ctx context.Context, ae *vae.Model, items, bgs []int, rng *rand.Rand) (tensor.Tensor, error) {
	if r.latents == nil {
		if err := r.cacheLatents(ctx, ae); err != nil {
			return tensor.Tensor{}, err
		}
	}
	b := len(items)
	noise := randn(rng, b*r.per)
	z := make([]float32, b*r.per)
	for k := range b {
		at := (items[k]*r.data.Backgrounds() + bgs[k]) * 2 * r.per
		mean, std := r.latents[at:at+r.per], r.latents[at+r.per:at+2*r.per]
		for j := range r.per {
			z[k*r.per+j] = mean[j] + std[j]*noise[k*r.per+j]
		}
	}
	h := r.cfg.LatentSize()
	return tensor.New(z, b, r.per/(h*h), h, h)
}
