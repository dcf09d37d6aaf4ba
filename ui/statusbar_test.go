package ui

import (
	"context"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/perfusion-studio/perfusion/app"
)

// With a model loading, a concept training and a render running, the bar
// shows the newest task and "+2"; the list shows all three, each with its
// own progress and cancel, and cancelling one (the load) leaves the others
// running.
func TestStatusBarSeveralTasks(t *testing.T) {
	block := func(ctx context.Context, path string, opt app.LoadOptions) (*app.Model, error) {
		opt.Progress(0.4)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s := newStudioWindow(t, Options{}, app.Options{Load: block})
	st := s.m.status
	s.m.openModel(t.TempDir())
	s.q.pumpUntil(t, "the load", func() bool { return st.tasks[app.TaskLoad] != nil && st.progress.Value > 0.3 })
	st.onTask(app.Task{Kind: app.TaskTraining, Label: "<disc>: Training step 3 of 10", Fraction: 0.3, ETA: time.Minute})
	st.onTask(app.Task{Kind: app.TaskRender, Label: "Rendering: step 1 of 20", Fraction: 0.05})
	s.q.pumpUntil(t, "three tasks", func() bool { return len(st.order) == 3 })

	if st.message.Text != "Rendering: step 1 of 20" || st.progress.Value != 0.05 || !st.cancel.Visible() || !st.more.Visible() || st.more.Text != "+2" {
		t.Fatalf("bar: %q at %v, cancel %v, more %v %q", st.message.Text, st.progress.Value, st.cancel.Visible(), st.more.Visible(), st.more.Text)
	}
	want := []app.TaskKind{app.TaskLoad, app.TaskTraining, app.TaskRender}
	for i, k := range want {
		r := st.tasks[k]
		if st.order[i] != k || r == nil || st.list.Objects[i] != r.row {
			t.Fatalf("row %d is not the %v task", i, k)
		}
	}
	if r := st.tasks[app.TaskTraining]; r.label.Text != "<disc>: Training step 3 of 10" || r.progress.Value != 0.3 || r.eta.Text != "ETA 1:00" {
		t.Errorf("training row %q %v %q", r.label.Text, r.progress.Value, r.eta.Text)
	}
	test.Tap(st.more)
	if st.popup == nil || !st.popup.Visible() {
		t.Fatal("+2 shows no list")
	}

	// Cancel the load from its row: it ends, the others stay.
	test.Tap(st.tasks[app.TaskLoad].cancel)
	s.q.pumpUntil(t, "the cancelled load", func() bool { return st.tasks[app.TaskLoad] == nil && s.m.preview.empty.Text == previewNoModel })
	if len(st.order) != 2 || st.more.Text != "+1" || st.cancel.Disabled() || st.progress.Value != 0.05 {
		t.Fatalf("after cancelling the load: %v, more %q, cancel disabled %v, bar at %v", st.order, st.more.Text, st.cancel.Disabled(), st.progress.Value)
	}

	// The render ends: the training comes to the bar, alone.
	st.onTask(app.Task{Kind: app.TaskRender, Label: "Render finished", Done: true, Fraction: 1})
	s.q.pumpUntil(t, "the render's end", func() bool { return len(st.order) == 1 })
	if st.progress.Value != 0.3 || st.eta.Text != "ETA 1:00" || st.more.Visible() || st.popup.Visible() {
		t.Errorf("training in the bar: %v %q, more %v, list %v", st.progress.Value, st.eta.Text, st.more.Visible(), st.popup.Visible())
	}
	test.Tap(st.cancel)
	if !st.cancel.Disabled() || !st.tasks[app.TaskTraining].cancel.Disabled() {
		t.Error("cancel stays enabled after a tap")
	}
	st.onTask(app.Task{Kind: app.TaskTraining, Label: "<disc>: stopped", Done: true, Err: context.Canceled})
	s.q.pumpUntil(t, "no tasks", func() bool { return len(st.order) == 0 })
	if st.progress.Visible() || st.cancel.Visible() || st.more.Visible() {
		t.Error("the bar still shows a task")
	}
}
