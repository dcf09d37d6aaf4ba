package train

import (
	"context"
	"errors"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
)

// Progress.Snapshot gives, at each training step, a copy of the concept as
// it stands then: the last one is the result, earlier ones differ, and
// other stages give none.
func TestProgressSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on the tiny model")
	}
	p := tinyPipeline(t, blocks.HalfAsStored)
	job := tinyJob(t, p, 4)
	var snaps []*Trained
	job.Progress = func(pr Progress) {
		if pr.Stage != StageTrain {
			if pr.Snapshot != nil {
				t.Errorf("stage %s has a snapshot", pr.Stage)
			}
			return
		}
		if pr.Snapshot == nil {
			t.Fatalf("step %d has no snapshot", pr.Step)
		}
		snaps = append(snaps, pr.Snapshot())
	}
	res, err := Run(context.Background(), job)
	if err != nil && !errors.Is(err, ErrNotLearned) {
		t.Fatal(err)
	}
	if len(snaps) != 4 {
		t.Fatalf("%d snapshots, want 4", len(snaps))
	}
	last := snaps[3]
	if relDiff(last.Embedding, res.Concept.Embedding) != 0 || relDiff(last.Layers[0].OutV, res.Concept.Layers[0].OutV) != 0 {
		t.Error("the last step's snapshot is not the result")
	}
	if relDiff(snaps[0].Embedding, res.Concept.Embedding) == 0 {
		t.Error("the first step's snapshot equals the final concept")
	}
	if last.Name != "disc" || last.Superclass != "toy" || len(last.Layers) != len(p.UNet.CrossAttentions()) {
		t.Errorf("snapshot %q %q with %d layers", last.Name, last.Superclass, len(last.Layers))
	}
}
