package unet

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// halfTol is the relative L2 error allowed between a model with float16
// weights and the float32 reference: rounding each weight to float16
// moves it by at most 2^-11 (4.9e-4) relatively, and the tiny models'
// outputs move by about 1e-3; 1e-2 leaves room for other seeds and sizes.
const halfTol = 1e-2

// relErr is ||got - want|| / ||want|| (L2), in float64.
func relErr(got, want []float32) float64 {
	var d, n float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		n += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / max(n, 1e-300))
}

// tinyMap reads the golden tiny UNet's weights into memory (float32).
func tinyMap(t *testing.T) weights.Map {
	t.Helper()
	m, err := weights.ReadAll(weights.Safetensors(golden.Open(t, "tiny_unet.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func loadWith(t *testing.T, src weights.Source, opt blocks.LoadOptions) *Model {
	t.Helper()
	m, err := Load(ops.CPU(), src, goldenConfig(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func epsOf(t *testing.T, m *Model) []float32 {
	t.Helper()
	x, ts, cond := inputs(t, golden.Open(t, ioFile))
	eps, err := m.Forward(context.Background(), x, ts, cond)
	if err != nil {
		t.Fatal(err)
	}
	return eps.Data()
}

// A float16 checkpoint (the golden weights rounded to float16) run with
// half storage gives the eps of the same rounded weights held as float32,
// to float32 rounding: the conversion on use is exact. Both are within
// fp16 tolerance of the float32 reference.
func TestHalfStorage(t *testing.T) {
	h := tinyMap(t).ToHalf()
	half := loadWith(t, h, blocks.LoadOptions{})
	ref := loadWith(t, h, blocks.LoadOptions{Half: blocks.HalfNever})
	got, want := epsOf(t, half), epsOf(t, ref)
	golden.Check(t, "eps, half storage vs float32", got, want, golden.Tolerance(t, ioFile, "eps"))
	t.Logf("half storage vs float32 of the same weights: max abs difference %.3g", maxErr(got, want))

	gold, _ := golden.Float32(t, golden.Open(t, ioFile), "eps")
	if e := relErr(got, gold); e > halfTol {
		t.Errorf("eps of float16 weights: relative error %.3g vs the float32 reference, want <= %g", e, halfTol)
	} else {
		t.Logf("eps of float16 weights: relative error %.3g vs the float32 reference", e)
	}

	hb, fb := half.WeightBytes(), ref.WeightBytes()
	var all int64
	for n, tt := range h {
		if len(n) > len(Prefix) && n[:len(Prefix)] == Prefix {
			all += int64(len(tt.Half))
		}
	}
	if fb != 4*all || hb >= fb || hb <= fb/2 {
		t.Errorf("WeightBytes: half %d, float32 %d (want %d, and half between 1/2 and 1 of it)", hb, fb, 4*all)
	}
	t.Logf("WeightBytes: float32 %d, half %d (%.0f%%)", fb, hb, 100*float64(hb)/float64(fb))
	if s := half.pool.Stats(); s.InUse != 0 || s.Allocated != 1 || s.Idle != 1 || s.Unpooled != 0 {
		t.Errorf("pool after one forward: %+v, want one buffer, returned", s)
	}

	// HalfAlways rounds a float32 checkpoint's layer weights on load: the
	// same memory as the float16 checkpoint, within fp16 tolerance.
	always := loadWith(t, tinyMap(t), blocks.LoadOptions{Half: blocks.HalfAlways})
	if always.WeightBytes() != hb {
		t.Errorf("HalfAlways WeightBytes %d, want %d as from the float16 checkpoint", always.WeightBytes(), hb)
	}
	if e := relErr(epsOf(t, always), gold); e > halfTol {
		t.Errorf("HalfAlways eps: relative error %.3g, want <= %g", e, halfTol)
	}
	for _, ca := range always.CrossAttentions() {
		if !ca.ToK.Valid() || !ca.ToV.Valid() {
			t.Fatalf("%s: to_k/to_v not float32 tensors under HalfAlways", ca.Name)
		}
	}
}

// Two goroutines share a half-storage model and its pool (run with -race).
func TestHalfConcurrent(t *testing.T) {
	m := loadWith(t, tinyMap(t).ToHalf(), blocks.LoadOptions{})
	want := epsOf(t, m)
	var wg sync.WaitGroup
	got := make([][]float32, 2)
	for i := range got {
		wg.Go(func() {
			for range 2 {
				got[i] = epsOf(t, m)
			}
		})
	}
	wg.Wait()
	for i := range got {
		golden.Check(t, "concurrent eps", got[i], want, golden.Tolerance(t, ioFile, "eps"))
	}
	if s := m.pool.Stats(); s.InUse != 0 || s.Allocated > 2 || s.Idle > 2 {
		t.Errorf("pool after concurrent forwards: %+v, want at most two buffers, all returned", s)
	}
}

// Gradients flow through a UNet with float16 weights into an editor's
// parameter (layers on the gradient path convert their weights again in
// backward, each read into a borrowed pool buffer: a few buffers serve the
// whole pass).
func TestEditorGradientHalf(t *testing.T) {
	if testing.Short() {
		t.Skip("backward through the tiny UNet")
	}
	m := loadWith(t, tinyMap(t).ToHalf(), blocks.LoadOptions{})
	editorGradient(t, m)
	// spago runs independent operators' backward concurrently, each with
	// a borrowed buffer, so a few buffers may be out at once; what matters
	// is that they serve every conversion, many times over.
	if s := m.pool.Stats(); s.InUse != 0 || s.Unpooled != 0 || s.Allocated > 16 || s.Pooled < 10*s.Allocated {
		t.Errorf("pool: %+v, want every conversion in a few reused pool buffers and nothing in use", s)
	}
}
