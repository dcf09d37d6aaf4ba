package unet

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// batchSizes are the latent sizes (H, W) of the batch tests: a regular one
// and degenerate ones. Degenerate sizes are ill-conditioned: in the golden
// tiny UNet (as many channels as GroupNorm groups) at 2×1 the
// full-resolution GroupNorms normalise groups of two values, y =
// ±d/sqrt(d²+eps) for half their difference d, which amplifies an input
// error up to 1/sqrt(eps) ≈ 316 times; several chain, so one ulp of change
// in x moves eps by about 1e-2. Two correct float32 GEMMs that round
// differently (OpenBLAS picks other kernels for a batch of two) then
// disagree that much, so batch independence is checked exactly with a
// backend whose rounding does not depend on the batch, and the default
// backend only to within the float32 noise measured at each size.
var batchSizes = [][2]int{{8, 8}, {2, 1}, {1, 2}, {3, 5}, {1, 1}}

// batchInputs are one latent and two different contexts.
type batchInputs struct {
	h, w       int
	cfg        Config
	lat        []float32 // [C, H, W]
	ctx0, ctx1 []float32 // [T, Dc] each
}

func newBatchInputs(rng *rand.Rand, cfg Config, h, w int) batchInputs {
	normal := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	const tokens = 77
	return batchInputs{h: h, w: w, cfg: cfg, lat: normal(cfg.InChannels * h * w),
		ctx0: normal(tokens * cfg.ContextDim), ctx1: normal(tokens * cfg.ContextDim)}
}

// x is the latent repeated b times: [b, C, H, W].
func (in batchInputs) x(b int) tensor.Tensor {
	var d []float32
	for range b {
		d = append(d, in.lat...)
	}
	return tensor.MustNew(d, b, in.cfg.InChannels, in.h, in.w)
}

func (in batchInputs) timesteps(b int) []float32 {
	ts := make([]float32, b)
	for i := range ts {
		ts[i] = 500
	}
	return ts
}

// context is ctx0, or ctx1 when item is 1, for a batch of one, and ctx0,
// ctx1 for a batch of two: [b, T, Dc].
func (in batchInputs) context(b, item int) tensor.Tensor {
	d := append([]float32(nil), in.ctx0...)
	switch {
	case b == 2:
		d = append(d, in.ctx1...)
	case item == 1:
		d = append([]float32(nil), in.ctx1...)
	}
	return tensor.MustNew(d, b, len(in.ctx0)/in.cfg.ContextDim, in.cfg.ContextDim)
}

// batchRun is eps for each context as a batch of one, one after the
// other (ctx0 then ctx1), and for both as one batch of two.
type batchRun struct{ ones, two []float32 }

// runOnes runs m on each context as a batch of one.
func runOnes(t *testing.T, m *Model, in batchInputs, call ...Call) []float32 {
	t.Helper()
	var ones []float32
	for item := range 2 {
		eps, err := m.Forward(context.Background(), in.x(1), in.timesteps(1), in.context(1, item), call...)
		if err != nil {
			t.Fatal(err)
		}
		ones = append(ones, eps.Data()...)
	}
	return ones
}

func runBatch(t *testing.T, m *Model, in batchInputs, call ...Call) batchRun {
	t.Helper()
	eps, err := m.Forward(context.Background(), in.x(2), in.timesteps(2), in.context(2, 0), call...)
	if err != nil {
		t.Fatal(err)
	}
	return batchRun{ones: runOnes(t, m, in, call...), two: eps.Data()}
}

// itemDiff is the largest difference between the batch of two and the
// batches of one, and where it is (item, index in the item).
func (r batchRun) itemDiff() (d float64, item, at int) {
	n := len(r.two) / 2
	for i, v := range r.ones {
		if e := math.Abs(float64(v - r.two[i])); !(e <= d) {
			d, item, at = e, i/n, i%n
		}
	}
	return d, item, at
}

// contextMatters reports whether the two items' eps differ, so that a
// leak between them can show at all. With as many channels as GroupNorm
// groups, a 1×1 latent makes every last-layer group one value, which
// normalises to its bias whatever the input.
func (r batchRun) contextMatters() bool {
	n := len(r.two) / 2
	return maxDiff(r.two[:n], r.two[n:]) > 0
}

// Each image of a batch is computed independently: each item of a batch
// of two (same latent, different contexts) is what a batch of one gives.
// With round-once GEMMs the model code must give it bit for bit at every
// latent size. With the default backend (whatever BLAS kernel runs), it
// must agree to within 1e-4 plus four times the float32 noise of that
// size: the largest difference from the round-once batches of one of
// batches of one computed with the default backend, the pure-Go GEMM, and
// GEMMs with added rounding-sized noise (two draws).
func TestBatchItemsIndependent(t *testing.T) {
	exact := loadOn(t, roundOnce{cpu.NewGo()})
	others := []*Model{loadOn(t, cpu.NewGo()), loadOn(t, newNoisy(cpu.NewGo(), 1)), loadOn(t, newNoisy(cpu.NewGo(), 2))}
	real := tiny(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, hw := range batchSizes {
		in := newBatchInputs(rng, real.Config, hw[0], hw[1])
		ref := runBatch(t, exact, in)
		if d, item, i := ref.itemDiff(); d != 0 {
			t.Errorf("latent %dx%d, round-once GEMM: item %d value %d differs by %g from the batch-of-one result", in.h, in.w, item, i, d)
		}
		got := runBatch(t, real, in)
		noise := maxDiff(got.ones, ref.ones)
		for _, m := range others {
			noise = max(noise, maxDiff(runOnes(t, m, in), ref.ones))
		}
		tol := 1e-4 + 4*noise
		d, item, i := got.itemDiff()
		t.Logf("latent %dx%d, %s: batch of two vs batches of one %.3g, float32 noise %.3g", in.h, in.w, real.e.B.Name(), d, noise)
		if d > tol {
			t.Errorf("latent %dx%d, %s: item %d value %d differs by %g from the batch-of-one result (tolerance %.3g, from float32 noise %.3g)",
				in.h, in.w, real.e.B.Name(), item, i, d, tol, noise)
		}
	}
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// The exact check fails when batch items leak into each other, even by a
// tiny amount (here every cross-attention sees 1e-6 of the other item's
// context), at every latent size where eps depends on the context.
func TestBatchCheckCatchesLeak(t *testing.T) {
	m := loadOn(t, roundOnce{cpu.NewGo()})
	rng := rand.New(rand.NewPCG(3, 4))
	checked := 0
	for _, hw := range batchSizes {
		in := newBatchInputs(rng, m.Config, hw[0], hw[1])
		if !runBatch(t, m, in).contextMatters() {
			t.Logf("latent %dx%d: eps does not depend on the context; no leak can show", in.h, in.w)
			continue
		}
		leak := Call{Editor: leakyEditor{e: ops.NewEngine(roundOnce{cpu.NewGo()}), mix: 1e-6}}
		if d, _, _ := runBatch(t, m, in, leak).itemDiff(); d == 0 {
			t.Errorf("latent %dx%d: a leak between batch items went unnoticed", in.h, in.w)
		}
		checked++
	}
	if checked == 0 {
		t.Error("no latent size where eps depends on the context")
	}
}

// leakyEditor projects context + mix × (the next item's context), a
// stand-in for a bug that mixes batch items.
type leakyEditor struct {
	e   *ops.Engine
	mix float32
}

func (l leakyEditor) Project(layer string, kv KV, ctx, w tensor.Tensor) (tensor.Tensor, error) {
	d := ctx.Data()
	item := len(d) / ctx.Dim(0)
	mixed := make([]float32, len(d))
	for i := range d {
		mixed[i] = d[i] + l.mix*d[(i+item)%len(d)]
	}
	return l.e.Linear(tensor.MustNew(mixed, ctx.Shape()...), w, tensor.Tensor{})
}
