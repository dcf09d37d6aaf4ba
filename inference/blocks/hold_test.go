package blocks

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// convertingEngine is a CPU engine whose backend does not multiply
// float16 (it hides backend.HalfGemmer), so that the layers convert their
// float16 weights and the scopes have something to hold.
func convertingEngine() *ops.Engine {
	return ops.NewEngine(struct{ backend.Backend }{ops.CPU().B})
}

// heldNet is a block of float16 layers: conv3x3 (OHIW) -> SiLU -> conv1x1
// (a Linear on the channels) -> conv3x3 with the same weight as the first
// (a weight read twice in one block), on x [B, C, H, W].
type heldNet struct {
	a, b Conv2D
}

func newHeldNet(t *testing.T, r *rand.Rand, pool *WeightPool, c int) heldNet {
	t.Helper()
	ha, _ := halfPair(t, r, pool, c, c, 3, 3)
	hb, _ := halfPair(t, r, pool, c, c, 1, 1)
	bias := tensor.MustNew(randFloat(r, c), c)
	p3 := ops.Conv2DParams{Stride: 1, Pad: ops.Pad(1)}
	return heldNet{
		a: Conv2D{Half: ha, Bias: bias, Params: p3},
		b: Conv2D{Half: hb, Bias: bias, Params: ops.Conv2DParams{Stride: 1}},
	}
}

func (n heldNet) forward(e *ops.Engine, x tensor.Tensor) (tensor.Tensor, error) {
	f := NewFlow(e)
	h := f.Conv(n.a, x)
	h = f.SiLU(h)
	h = f.Conv(n.b, h)
	h = f.Conv(n.a, h)
	return h, f.Err()
}

// heldPass runs two checkpointed heldNets (through Checkpoint when pool
// is nil, else CheckpointOn) forward and backward and returns the output,
// the input's gradient and the pool's stats over the pass.
func heldPass(t *testing.T, e *ops.Engine, nets []heldNet, pool *WeightPool, xv, gy []float32, shape []int, on bool, spare *HeldBuffers) (y, gx []float32, st PoolStats) {
	t.Helper()
	x, err := tensor.NewParam(slices.Clone(xv), shape...)
	if err != nil {
		t.Fatal(err)
	}
	rc := &Recompute{Spare: spare}
	before := pool.Stats()
	h := x
	for _, n := range nets {
		fn := func(e *ops.Engine, in []tensor.Tensor) (tensor.Tensor, error) { return n.forward(e, in[0]) }
		if on {
			h, err = rc.CheckpointOn(e, pool, fn, h)
		} else {
			h, err = rc.Checkpoint(func(in []tensor.Tensor) (tensor.Tensor, error) { return fn(e, in) }, h)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tensor.AccGrad(h.Node(), slices.Clone(gy))
	if err := ag.Backward(h.Node()); err != nil {
		t.Fatal(err)
	}
	if err := rc.Err(); err != nil {
		t.Fatal(err)
	}
	after := pool.Stats()
	st = PoolStats{Unpooled: after.Unpooled - before.Unpooled, Pooled: after.Pooled - before.Pooled, Held: after.Held - before.Held,
		Direct: after.Direct - before.Direct, InUse: after.InUse}
	if b := rc.held().Bytes(); on && !e.HalfGemm() && b == 0 {
		t.Error("the held buffers were not kept for the next block")
	}
	return slices.Clone(h.Data()), slices.Clone(x.Grad()), st
}

// CheckpointOn converts each float16 weight of a recomputed block once
// for its recomputation and backward pass together (two conversions per
// weight and pass: the forward's and the recomputation's, where
// Checkpoint's lazy weights take three), and gives bit-identical outputs
// and input gradients; every scope is closed afterwards.
func TestCheckpointOnConvertsOnce(t *testing.T) {
	for _, e := range []*ops.Engine{ops.CPU(), convertingEngine()} {
		checkpointOnConvertsOnce(t, e)
	}
}

func checkpointOnConvertsOnce(t *testing.T, e *ops.Engine) {
	r := rand.New(rand.NewPCG(11, 12))
	pool := new(WeightPool)
	const c = 4
	nets := []heldNet{newHeldNet(t, r, pool, c), newHeldNet(t, r, pool, c)}
	shape := []int{2, c, 5, 6}
	xv := randFloat(r, tensor.Numel(shape))
	gy := randFloat(r, tensor.Numel(shape))

	y0, g0, lazy := heldPass(t, e, nets, pool, xv, gy, shape, false, nil)
	y1, g1, held := heldPass(t, e, nets, pool, xv, gy, shape, true, nil)
	if !slices.Equal(y0, y1) || !slices.Equal(g0, g1) {
		t.Error("held weights change the output or the input gradient")
	}
	// Per block: 3 weight reads (a, b, a again), 2 distinct weights.
	const reads, weights = 3 * 2, 2 * 2
	// The first forward (no graph) converts each read into a pool buffer,
	// or none where the backend multiplies float16 directly.
	first := PoolStats{Pooled: reads}
	if e.HalfGemm() {
		first = PoolStats{Direct: reads}
	}
	// Checkpoint's lazy weights borrow pool buffers (tensor.Lender) for the
	// recomputation's reads and the backward pass's; where the backend
	// multiplies float16 both read them as stored, and so does
	// CheckpointOn's scope, which has nothing to hold.
	want := PoolStats{Pooled: first.Pooled + 2*reads, Direct: first.Direct}
	wantHeld := PoolStats{Pooled: first.Pooled, Held: weights, Direct: first.Direct}
	if e.HalfGemm() {
		want = PoolStats{Direct: 3 * reads}
		wantHeld = want
	}
	if lazy != want {
		t.Errorf("HalfGemm %v: Checkpoint: %+v, want %+v", e.HalfGemm(), lazy, want)
	}
	if held != wantHeld {
		t.Errorf("HalfGemm %v: CheckpointOn: %+v, want %+v (each weight converted once by the recomputation, or read as stored)",
			e.HalfGemm(), held, wantHeld)
	}
	pool.mu.Lock()
	open := len(pool.scopes)
	pool.mu.Unlock()
	if open != 0 {
		t.Errorf("%d scopes left open", open)
	}
}

// A scope serves only its own engine: calls on the engine it was opened
// from (a preview running beside a training step) still borrow pooled
// buffers, and a closed scope's engine falls back to the pool too.
func TestWeightScopeEngines(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	e := convertingEngine()
	pool := new(WeightPool)
	h, w := halfPair(t, r, pool, 6, 5)
	lin, ref := Linear{Half: h}, Linear{Weight: w}
	x := tensor.MustNew(randFloat(r, 3*5), 3, 5)
	want, err := ref.Forward(e, x)
	if err != nil {
		t.Fatal(err)
	}
	var hb HeldBuffers
	s := pool.Hold(e, &hb)
	for _, eng := range []*ops.Engine{s.Engine(), s.Engine(), e} {
		got, err := lin.Forward(eng, x)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Data(), want.Data()) {
			t.Error("a held weight gives other values than its exact float32")
		}
	}
	// The other engine's call reads the weight from the pool (Pooled) or
	// as stored (Direct, where the backend multiplies float16).
	if st := pool.Stats(); st.Held != 1 || st.Pooled+st.Direct != 1 || st.InUse != 0 {
		t.Errorf("stats %+v, want one held and one pooled or direct read", st)
	}
	s.Close()
	s.Close() // idempotent
	if hb.Bytes() != 4*6*5 {
		t.Errorf("spare buffers hold %d bytes after Close, want %d", hb.Bytes(), 4*6*5)
	}
	if _, err := lin.Forward(s.Engine(), x); err != nil {
		t.Fatal(err)
	}
	if st := pool.Stats(); st.Held != 1 || st.Pooled+st.Direct != 2 {
		t.Errorf("after Close: %+v, want the pool to serve the scope's engine", st)
	}
}

// HeldBuffers hands out the smallest spare buffer that fits (wasting at
// most a quarter) and keeps at most the largest scope's bytes.
func TestHeldBuffers(t *testing.T) {
	var hb HeldBuffers
	a, b := make([]float32, 100), make([]float32, 40)
	hb.put(a, 4*140)
	hb.put(b, 4*140)
	if hb.Bytes() != 4*140 {
		t.Fatalf("bytes %d, want %d", hb.Bytes(), 4*140)
	}
	if got := hb.get(35); cap(got) != 40 || len(got) != 35 {
		t.Errorf("get(35): cap %d len %d, want the 40-float buffer", cap(got), len(got))
	}
	if got := hb.get(50); cap(got) != 50 {
		t.Errorf("get(50): cap %d, want a fresh buffer (100 wastes too much)", cap(got))
	}
	hb.put(make([]float32, 200), 4*200) // the limit grows with the largest scope
	hb.put(make([]float32, 10), 4*10)
	if hb.Bytes() > 4*300 {
		t.Errorf("bytes %d over the limit %d", hb.Bytes(), 4*300)
	}
	if got := hb.get(200); cap(got) != 200 {
		t.Errorf("get(200): cap %d, want the kept 200-float buffer", cap(got))
	}
}

// Passes whose Recomputes share a HeldBuffers (a training run's) reuse
// its buffers: after the first pass no held buffer is allocated.
func TestRecomputeSpareAcrossPasses(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	e := convertingEngine()
	pool := new(WeightPool)
	const c = 3
	nets := []heldNet{newHeldNet(t, r, pool, c), newHeldNet(t, r, pool, c)}
	shape := []int{1, c, 4, 4}
	xv := randFloat(r, tensor.Numel(shape))
	gy := randFloat(r, tensor.Numel(shape))
	var hb HeldBuffers
	y0, g0, _ := heldPass(t, e, nets, pool, xv, gy, shape, true, &hb)
	made := hb.made
	if made == 0 {
		t.Fatal("the first pass allocated no held buffer")
	}
	for range 2 {
		y, g, st := heldPass(t, e, nets, pool, xv, gy, shape, true, &hb)
		if !slices.Equal(y, y0) || !slices.Equal(g, g0) {
			t.Error("a pass on reused buffers gives other values")
		}
		if st.Held != 4 {
			t.Errorf("%d held conversions, want 4", st.Held)
		}
	}
	if hb.made != made {
		t.Errorf("later passes allocated %d more held buffers, want none", hb.made-made)
	}
}
