package app

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/app/jobs"
	"github.com/perfusion-studio/perfusion/concepts/train"
)

// The plan keeps samples within the budget of the run's time, whatever a
// sample costs against a step, and learns from what it measures.
func TestSamplePlanBudget(t *testing.T) {
	quick, err := train.PresetSettings(train.Quick)
	if err != nil {
		t.Fatal(err)
	}
	if n := newSamplePlan(0.1, quick, 256, 6, 0).every(); n != 0 {
		t.Errorf("every = %d before a step is measured, want 0", n)
	}
	for _, c := range []struct {
		step, sample time.Duration
		budget       float64
	}{
		{time.Second, 3 * time.Second, 0.1},
		{30 * time.Second, 25 * time.Second, 0.1},
		{time.Second, 100 * time.Millisecond, 0.1},
		{2 * time.Second, 9 * time.Second, 0.05},
	} {
		sp := newSamplePlan(c.budget, quick, 256, 6, 0)
		var train, samples time.Duration
		drawn := 0
		for step := 1; step <= 500; step++ {
			train += c.step
			if step > 1 {
				sp.observeStep(c.step)
			}
			if sp.due(step, 500) {
				samples += c.sample
				drawn++
				sp.observeSample(step, c.sample)
			}
		}
		// One sample at the guessed interval may overspend; after that the
		// measured cost sets N.
		if share := float64(samples-c.sample) / float64(train); share > c.budget {
			t.Errorf("%+v: samples took %.3f of the time, want ≤ %.2f", c, share, c.budget)
		}
		want := int(float64(c.sample) / (c.budget * float64(c.step)))
		if n := sp.every(); n < want || n > want+1 {
			t.Errorf("%+v: every %d steps, want about %d", c, n, want)
		}
		if drawn < 500/(want+1)-1 {
			t.Errorf("%+v: %d samples in 500 steps, want about %d", c, drawn, 500/max(want, 1))
		}
	}
	// The guess before any sample is measured: a bigger sample, or a
	// smaller training batch, waits longer.
	small, big := newSamplePlan(0.1, quick, 128, 6, 0), newSamplePlan(0.1, quick, 512, 6, 0)
	small.observeStep(time.Second)
	big.observeStep(time.Second)
	if small.every() >= big.every() {
		t.Errorf("guessed every: %d at 128 px, %d at 512 px", small.every(), big.every())
	}
	// Off, the last step, and a resumed run's start.
	off := newSamplePlan(0, quick, 256, 6, 0)
	off.observeStep(time.Second)
	if off.due(100, 200) {
		t.Error("a sample is due with samples off")
	}
	sp := newSamplePlan(1, quick, 256, 6, 40)
	sp.observeStep(time.Second)
	sp.observeSample(40, time.Second)
	if sp.due(40, 200) || !sp.due(41, 200) || sp.due(200, 200) {
		t.Errorf("due after a resume at 40: at 40 %v, 41 %v, the last step %v", sp.due(40, 200), sp.due(41, 200), sp.due(200, 200))
	}
}

func TestSampleSide(t *testing.T) {
	for _, c := range []struct{ native, preview, mult, want int }{
		{512, 256, 64, 256},
		{512, 0, 64, 512},
		{64, 256, 64, 64},
		{512, 300, 64, 256},
		{512, 40, 64, 64},
		{32, 256, 8, 32},
	} {
		if got := sampleSide(c.native, c.preview, c.mult); got != c.want {
			t.Errorf("sampleSide(%d, %d, %d) = %d, want %d", c.native, c.preview, c.mult, got, c.want)
		}
	}
	sd, _ := train.PresetFor(train.Quick, 512)
	small, _ := train.PresetFor(train.Quick, 32)
	if p := samplePrompt("disc", sd); p != "a photo of a <disc>" {
		t.Errorf("samplePrompt(SD1.x's Quick) = %q", p)
	}
	if p := samplePrompt("disc", small); p != "<disc>" {
		t.Errorf("samplePrompt(a 32-px model's Quick) = %q", p)
	}
}

// While a concept trains it sends samples at the model's native size
// capped to the preview's; a preview queued during a sample runs before the
// sample ends; cancelling during a sample stops the run.
func TestTrainingSamples(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on the tiny model")
	}
	s, _ := openTiny(t)
	s.SetPreviewSettings(PreviewSettings{MaxSide: 32, Steps: 2}) // cheap samples
	tr := trainingOn(t, s)
	tr.sampleBudget = 100 // a sample after every step
	var rec recorder
	tr.OnEvent(rec.add)
	previewRan := make(chan struct{})
	sampleDone := false // written on the training goroutine only
	previewBeforeSample := make(chan bool, 1)
	queued := false
	tr.samplePause = func() {
		if queued {
			return
		}
		queued = true
		s.Jobs.Submit(jobs.Preview, "preview", func(context.Context) error {
			previewBeforeSample <- !sampleDone
			close(previewRan)
			return nil
		})
	}
	tr.OnEvent(func(e TrainingEvent) {
		if e.StepSample != nil {
			sampleDone = true
		}
	})
	done, err := tr.Start(tinyRequest(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	waitLong(t, done, "training run")
	<-previewRan
	if !<-previewBeforeSample {
		t.Error("a preview queued during a sample waited for the sample to end")
	}
	p, info := s.Models.Current()
	side := sampleSide(p.NativeSize(), s.PreviewSettings().MaxSide, info.SizeMultiple)
	var got []*TrainingSample
	for _, e := range rec.all() {
		if e.StepSample == nil {
			continue
		}
		ts := e.StepSample
		if ts.Image == nil || ts.Image.Bounds().Dx() != side || ts.Image.Bounds().Dy() != side || ts.Cost <= 0 {
			t.Fatalf("sample %+v, want %d px", ts, side)
		}
		if e.Step != ts.Step || e.SampleEvery < 1 || e.Stage != train.StageTrain || e.Done {
			t.Errorf("sample event %+v", e)
		}
		got = append(got, ts)
		t.Logf("sample at step %d: %v (noisy: a shared machine)", ts.Step, ts.Cost)
	}
	if !slices.ContainsFunc(rec.all(), func(e TrainingEvent) bool { return strings.HasSuffix(e.Label, "; drawing a sample") && e.Step == 2 }) {
		t.Error("no event says a sample is being drawn")
	}
	// Steps 2, 3 and 4: the first step's cost is not measured yet, the last
	// step has the self-check.
	if len(got) != 3 || got[0].Step != 2 || got[2].Step != 4 {
		for _, g := range got {
			t.Logf("sample at step %d", g.Step)
		}
		t.Fatalf("%d samples, want at steps 2 to 4", len(got))
	}
	if bytes.Equal(got[0].Image.Pix, got[2].Image.Pix) {
		t.Error("the samples at steps 2 and 4 are the same: they do not follow the concept")
	}
	last := rec.all()[len(rec.all())-1]
	if !last.Done || (last.Err != nil && !IsNotLearned(last.Err)) { // 5 steps may not pass the self-check
		t.Fatalf("run ended with %+v", last)
	}

	// Cancelled during a sample, the run stops there.
	if err := tr.Discard("disc"); err != nil {
		t.Fatal(err)
	}
	var rec2 recorder
	tr.OnEvent(rec2.add)
	var tasks []Task
	var tmu sync.Mutex
	s.OnTask(func(tk Task) {
		if tk.Kind == TaskTraining {
			tmu.Lock()
			tasks = append(tasks, tk)
			tmu.Unlock()
		}
	})
	tr.samplePause = func() { s.CancelTasks(TaskRender); s.CancelTasks(TaskTraining) }
	req := tinyRequest(t, 5)
	req.Name = "disc2"
	done, err = tr.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	waitLong(t, done, "cancelled run")
	evs := rec2.all()
	end := evs[len(evs)-1]
	if !end.Done || !errors.Is(end.Err, context.Canceled) {
		t.Fatalf("last event %+v, want cancelled", end)
	}
	for _, e := range evs {
		if e.StepSample != nil || (e.Stage == train.StageTrain && e.Step > 2) {
			t.Errorf("after the cancel at step 2's sample: %+v", e)
		}
	}
	// The run is a task too, for the status bar.
	tmu.Lock()
	defer tmu.Unlock()
	if len(tasks) < 3 || !strings.HasPrefix(tasks[0].Label, "<disc2>: ") || !slices.ContainsFunc(tasks, func(tk Task) bool { return tk.Fraction > 0 && !tk.Done }) {
		t.Fatalf("training tasks %+v", tasks)
	}
	if end := tasks[len(tasks)-1]; !end.Done || !errors.Is(end.Err, context.Canceled) {
		t.Errorf("last training task %+v", end)
	}
}

// CancelTasks stops the tasks of one kind and leaves the others.
func TestCancelTasksByKind(t *testing.T) {
	s := NewStudio()
	defer s.Close()
	var cancelled []TaskKind
	for _, k := range []TaskKind{TaskLoad, TaskRender, TaskExport, TaskRender} {
		s.addCancel(k, func() { cancelled = append(cancelled, k) })
	}
	remove := s.addCancel(TaskConcepts, func() { cancelled = append(cancelled, TaskConcepts) })
	remove()
	s.CancelTasks(TaskRender)
	if !slices.Equal(cancelled, []TaskKind{TaskRender, TaskRender}) {
		t.Errorf("CancelTasks(TaskRender) cancelled %v", cancelled)
	}
	cancelled = nil
	s.CancelTasks(TaskConcepts)
	s.CancelTasks(TaskTraining) // no run: nothing happens
	if len(cancelled) != 0 {
		t.Errorf("removed or absent tasks cancelled: %v", cancelled)
	}
	s.CancelTask()
	slices.Sort(cancelled)
	if !slices.Equal(cancelled, []TaskKind{TaskLoad, TaskRender, TaskRender, TaskExport}) {
		t.Errorf("CancelTask cancelled %v", cancelled)
	}
}

// waitLong waits for a training run, longer than wait: covariance and
// training under -race on a shared machine take minutes.
func waitLong(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}
