package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
)

// TestResume cancels a run after 3 of 6 steps, resumes it from its resume
// file, and compares the result with an uninterrupted run of the same
// seed.
func TestResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on the tiny model")
	}
	p := tinyPipeline(t, blocks.HalfAsStored)
	job := tinyJob(t, p, 6)
	job.Settings.CheckpointEvery = 2

	full, err := Run(context.Background(), job)
	if err != nil && !errors.Is(err, ErrNotLearned) {
		t.Fatal(err)
	}

	job.Resume = filepath.Join(t.TempDir(), "disc.resume")
	ctx, cancel := context.WithCancel(context.Background())
	crashed := job.Resume + ".crash"
	job.Progress = func(pr Progress) {
		if pr.Stage == StageTrain && pr.Step == 3 {
			// what a crash now would leave: the periodic checkpoint of step 2
			data, err := os.ReadFile(job.Resume)
			if err != nil {
				t.Error(err)
			}
			os.WriteFile(crashed, data, 0o644)
			cancel()
		}
	}
	if _, err := Run(ctx, job); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	st, ok, err := readState(job.Resume)
	if err != nil || !ok || st.Step != 3 {
		t.Fatalf("resume file after cancel: ok %v, err %v, step %d", ok, err, st.Step)
	}

	resumedFrom := -1
	job.Progress = func(pr Progress) {
		if pr.Stage == StageTrain && resumedFrom < 0 {
			resumedFrom = pr.Resumed
		}
	}
	res, err := Run(context.Background(), job)
	if err != nil && !errors.Is(err, ErrNotLearned) {
		t.Fatal(err)
	}
	if resumedFrom != 3 || len(res.Losses) != 6 {
		t.Fatalf("resumed from %d with %d losses", resumedFrom, len(res.Losses))
	}
	if d := relDiff(res.Concept.Embedding, full.Concept.Embedding); d > 1e-4 {
		t.Errorf("resumed embedding differs from the uninterrupted run's by %g", d)
	}
	if d := relDiff(res.Concept.Layers[0].OutV, full.Concept.Layers[0].OutV); d > 1e-4 {
		t.Errorf("resumed o*_V differs by %g", d)
	}
	if d := relDiff(res.Concept.TargetInput, full.Concept.TargetInput); d > 1e-5 {
		t.Errorf("resumed i* differs by %g", d)
	}

	// After a crash, the run continues from the last periodic checkpoint.
	crash := job
	crash.Resume = crashed
	resumedFrom = -1
	res, err = Run(context.Background(), crash)
	if err != nil && !errors.Is(err, ErrNotLearned) {
		t.Fatal(err)
	}
	if resumedFrom != 2 || relDiff(res.Concept.Embedding, full.Concept.Embedding) > 1e-4 {
		t.Errorf("after a crash: resumed from %d, embedding off by %g", resumedFrom, relDiff(res.Concept.Embedding, full.Concept.Embedding))
	}

	// More steps continue the finished run.
	more := job
	more.Settings.Steps = 8
	resumedFrom = -1
	more.Progress = job.Progress
	res, err = Run(context.Background(), more)
	if err != nil && !errors.Is(err, ErrNotLearned) {
		t.Fatal(err)
	}
	if resumedFrom != 6 || len(res.Losses) != 8 {
		t.Errorf("8 steps after 6: resumed from %d with %d losses", resumedFrom, len(res.Losses))
	}

	// Another run's resume file is not used; a broken one is an error.
	other := job
	other.Class = "cat"
	other.Settings.Steps = 1
	other.Progress = func(pr Progress) {
		if pr.Stage == StageTrain && pr.Resumed != 0 {
			t.Errorf("a different run resumed from step %d", pr.Resumed)
		}
	}
	if _, err := Run(context.Background(), other); err != nil && !errors.Is(err, ErrNotLearned) {
		t.Fatal(err)
	}
	if err := os.WriteFile(job.Resume, []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), job); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("broken resume file: %v", err)
	}
}
