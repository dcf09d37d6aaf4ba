package train

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/blocks"
)

// TestRecomputeGradients checks that a training pass with activation
// recomputation gives the loss and the gradients of the embedding and of
// every o*_V that the pass keeping its activations gives, to float
// rounding, on the tiny golden model with float16-held weights; and the
// recomputed o*_V gradient against central finite differences of the
// pass's loss.
func TestRecomputeGradients(t *testing.T) {
	if testing.Short() {
		t.Skip("backward through the tiny model")
	}
	p := tinyPipeline(t, blocks.HalfAlways)
	job := tinyJob(t, p, 1)
	ctx := context.Background()
	tr, err := newTrainer(ctx, job, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ss := tr.draw(3, 0, 2)
	pass := func(mode RecomputeMode) (loss float64, gEmb []float32, gV [][]float32) {
		saved := tr.st.snapshot() // pass moves i*
		defer func() { tr.st = saved }()
		tr.s.Recompute = mode
		gEmb = make([]float32, tr.d)
		gV = make([][]float32, len(tr.layers))
		for l := range gV {
			gV[l] = make([]float32, len(tr.st.OutV[l]))
		}
		loss, err := tr.pass(ctx, ss, 1, gEmb, gV)
		if err != nil {
			t.Fatal(err)
		}
		return loss, gEmb, gV
	}
	l0, e0, v0 := pass(RecomputeOff)
	l1, e1, v1 := pass(RecomputeOn)
	if math.Abs(l0-l1) > 1e-6*math.Abs(l0) {
		t.Errorf("loss %g with recomputation, %g without", l1, l0)
	}
	if d := relDiff(e1, e0); d > 1e-5 || slices.Max(e0) == 0 {
		t.Errorf("embedding gradient differs by %g (relative), max %g", d, slices.Max(e0))
	}
	for l := range v0 {
		if d := relDiff(v1[l], v0[l]); d > 1e-5 {
			t.Errorf("o*_V gradient of %s differs by %g (relative)", tr.layers[l].Name, d)
		}
	}
	// the largest o*_V gradient, checked by central differences
	bl, bi := 0, 0
	for l := range v1 {
		for i, g := range v1[l] {
			if math.Abs(float64(g)) > math.Abs(float64(v1[bl][bi])) {
				bl, bi = l, i
			}
		}
	}
	const h = 0.1 // the pass's loss is a float32: smaller steps drown in its rounding
	old := tr.st.OutV[bl][bi]
	tr.st.OutV[bl][bi] = old + h
	up, _, _ := pass(RecomputeOn)
	tr.st.OutV[bl][bi] = old - h
	down, _, _ := pass(RecomputeOn)
	tr.st.OutV[bl][bi] = old
	fd := (up - down) / (2 * h)
	if g := float64(v1[bl][bi]); math.Abs(fd-g) > 2e-2*math.Abs(fd)+1e-6 {
		t.Errorf("o*_V[%d][%d] gradient %g, finite difference %g", bl, bi, g, fd)
	}
}

func TestRecomputeMode(t *testing.T) {
	for _, tc := range []struct {
		mode        RecomputeMode
		size, micro int
		want        bool
	}{
		{RecomputeAuto, 256, 1, false}, {RecomputeAuto, 256, 4, false}, {RecomputeAuto, 256, 5, true},
		{RecomputeAuto, 512, 1, false}, {RecomputeAuto, 512, 2, true}, {RecomputeAuto, 512, 4, true},
		{RecomputeAuto, 64, 2, false},
		{RecomputeOn, 32, 1, true}, {RecomputeOff, 512, 1, false},
	} {
		s := Settings{Recompute: tc.mode, Size: tc.size, Micro: tc.micro}
		if got := s.Recomputes(); got != tc.want {
			t.Errorf("mode %d at %d px × %d: recomputes %v, want %v", tc.mode, tc.size, tc.micro, got, tc.want)
		}
	}
	s, err := PresetSettings(Quick)
	if err != nil {
		t.Fatal(err)
	}
	s.Recompute = RecomputeOff + 1
	if err := s.Check(8); err == nil {
		t.Error("an unknown recompute mode passed the check")
	}
}
