package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/concepts/train"
)

// TestTrainingUsesShippedCovariance: on a default model whose folder
// carries its C (as mkdefault writes it), the first training run reads it
// instead of computing C (no covariance progress, nothing cached) and goes
// on to train.
func TestTrainingUsesShippedCovariance(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a step on the tiny model")
	}
	def, installed, _ := testDefault(t)
	s, err := OpenStudio(Options{ConfigDir: t.TempDir(), PreviewDelay: time.Millisecond, DefaultModel: def})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	wait(t, s.OpenDefaultModel(), "default model load")
	p, info := s.Models.Current()
	if p == nil || !info.Default {
		t.Fatalf("default model did not load: %s", s.Status())
	}
	tr := trainingOn(t, s)
	shipped, _, err := covariance.WriteShipped(context.Background(), p, tr.captions(), covariance.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(filepath.Dir(shipped)) != installed {
		t.Fatalf("shipped C at %s, not in the model folder %s", shipped, installed)
	}

	var rec recorder
	tr.OnEvent(rec.add)
	tr.OnEvent(func(e TrainingEvent) {
		if e.Stage == train.StageTrain {
			tr.Cancel()
		}
	})
	done, err := tr.Start(tinyRequest(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	wait(t, done, "training run")
	trained := false
	for _, e := range rec.all() {
		if e.Stage == StageCovariance && e.Total > 0 {
			t.Errorf("C was computed: %+v", e)
		}
		trained = trained || e.Stage == train.StageTrain
		if e.Err != nil && !errors.Is(e.Err, context.Canceled) {
			t.Errorf("run failed: %v", e.Err)
		}
	}
	if !trained {
		t.Errorf("the run did not reach training; status %q", s.Status())
	}
	if ents, err := os.ReadDir(filepath.Join(tr.dataDir, covarianceDir)); len(ents) != 0 {
		t.Errorf("C was cached: %v %v", ents, err)
	}
}
