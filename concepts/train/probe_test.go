package train

import (
	"context"
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
)

// A Probe runs passes and forwards on the tiny model without photos, and
// refuses what a run refuses.
func TestProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the tiny model")
	}
	p := tinyPipeline(t, blocks.HalfAsStored)
	m := identityMetric(t, p.CLIP.Config.HiddenSize)
	s, err := PresetSettings(Quick)
	if err != nil {
		t.Fatal(err)
	}
	s.Size, s.Batch, s.Micro, s.Recompute = 32, 2, 2, RecomputeOn
	pb, err := NewProbe(p, m, "toy", s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		loss, err := pb.Sample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !(loss > 0) || math.IsInf(loss, 0) {
			t.Fatalf("loss %g", loss)
		}
	}
	run, err := pb.ForwardPass()
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	if err := run(ctx); err != nil {
		t.Fatalf("forward: %v", err)
	}
	if _, err := NewProbe(p, m, "two words", s); err == nil {
		t.Error("a superordinate word of two tokens was accepted")
	}
	s.Micro = 3
	if _, err := NewProbe(p, m, "toy", s); err == nil {
		t.Error("a micro-batch that does not divide the batch was accepted")
	}
	if _, err := NewProbe(p, nil, "toy", s); err == nil {
		t.Error("a probe without a metric was accepted")
	}
}
