package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// block submits a job that holds the worker until release is closed.
func block(t *testing.T, r *Runner) (started chan struct{}, release chan struct{}) {
	t.Helper()
	started, release = make(chan struct{}), make(chan struct{})
	r.Submit(Render, "blocker", func(ctx context.Context) error {
		close(started)
		<-release
		return nil
	})
	<-started
	return started, release
}

func TestPreviewsRunFirstThenInOrder(t *testing.T) {
	r := New()
	defer r.Close()
	_, release := block(t, r)

	var mu sync.Mutex
	var order []string
	add := func(p Priority, name string) *Job {
		return r.Submit(p, name, func(context.Context) error {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		})
	}
	jobs := []*Job{add(Training, "train"), add(Render, "render1"), add(Preview, "preview1"), add(Render, "render2"), add(Preview, "preview2")}
	if n := r.Pending(); n != 5 {
		t.Fatalf("Pending = %d, want 5", n)
	}
	close(release)
	for _, j := range jobs {
		if err := j.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	want := "preview1 preview2 render1 render2 train"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("ran %q, want %q", got, want)
	}
}

func TestCancelQueuedJobNeverRuns(t *testing.T) {
	r := New()
	defer r.Close()
	_, release := block(t, r)
	ran := false
	j := r.Submit(Preview, "p", func(context.Context) error { ran = true; return nil })
	j.Cancel()
	close(release)
	if err := j.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if ran {
		t.Fatal("a cancelled queued job ran")
	}
}

func TestCancelRunningJob(t *testing.T) {
	r := New()
	defer r.Close()
	started := make(chan struct{})
	j := r.Submit(Render, "long", func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	<-started
	if j.Err() != nil {
		t.Fatal("Err before the job finished")
	}
	j.Cancel()
	if err := j.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	// The worker carries on with the next job.
	if err := r.Submit(Preview, "next", func(context.Context) error { return nil }).Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestPanicBecomesError(t *testing.T) {
	r := New()
	defer r.Close()
	err := r.Submit(Render, "bad", func(context.Context) error { panic("boom") }).Wait()
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("err = %v", err)
	}
	if err := r.Submit(Render, "good", func(context.Context) error { return nil }).Wait(); err != nil {
		t.Fatalf("runner dead after a panic: %v", err)
	}
}

func TestCloseCancelsEverything(t *testing.T) {
	r := New()
	started := make(chan struct{})
	running := r.Submit(Training, "train", func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	<-started
	queued := r.Submit(Preview, "p", func(context.Context) error { return nil })
	r.Close()
	if err := running.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("running job: %v", err)
	}
	if err := queued.Wait(); !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
		t.Errorf("queued job: %v", err)
	}
	if err := r.Submit(Preview, "late", func(context.Context) error { return nil }).Wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("submit after close: %v", err)
	}
}

func TestConcurrentSubmits(t *testing.T) {
	r := New()
	defer r.Close()
	var mu sync.Mutex
	running, most, total := 0, 0, 0
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			r.Submit(Priority(i%3), "j", func(context.Context) error {
				mu.Lock()
				running++
				most = max(most, running)
				total++
				mu.Unlock()
				mu.Lock()
				running--
				mu.Unlock()
				return nil
			}).Wait()
		})
	}
	wg.Wait()
	if total != 40 || most != 1 {
		t.Fatalf("ran %d jobs, at most %d at once; want 40, 1", total, most)
	}
}
