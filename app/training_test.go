package app

import (
	"context"
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/app/jobs"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/photos"
	"github.com/perfusion-studio/perfusion/concepts/train"
)

// writeTrainPhotos writes n small photos of a disc (moving with i) into a
// new folder.
func writeTrainPhotos(t *testing.T, n int) []TrainPhoto {
	t.Helper()
	var out []TrainPhoto
	for _, p := range conceptstest.DiscPhotos(t, n, 40, "png") {
		out = append(out, TrainPhoto{Path: p})
	}
	return out
}

// trainingOn returns the studio's training service with a small
// covariance corpus (the tiny model's text width is 64), stopped and
// waited for at the end of the test.
func trainingOn(t *testing.T, s *Studio) *Training {
	t.Helper()
	tr := s.Training()
	tr.captions = func() []string {
		c, err := captions.Generate(300, captions.DefaultSeed)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Cleanup(func() { tr.Cancel(); tr.Wait() })
	return tr
}

// tinyRequest is a short run on the tiny model.
func tinyRequest(t *testing.T, steps int) TrainRequest {
	return TrainRequest{Photos: writeTrainPhotos(t, 3), Name: "disc", Word: "toy", Preset: PresetQuick, Steps: steps, Size: 32, Batch: 2}
}

func TestTrainingValidation(t *testing.T) {
	if _, err := NewStudio().Training().Start(TrainRequest{}); !errors.Is(err, ErrNoDataFolder) {
		t.Errorf("no data folder: %v", err)
	}
	s, _ := openTiny(t)
	tr := trainingOn(t, s)
	good := tinyRequest(t, 2)
	if err := tr.Validate(good); err != nil {
		t.Fatalf("good request: %v", err)
	}
	text := filepath.Join(t.TempDir(), "notes.jpg")
	os.WriteFile(text, []byte("not an image at all"), 0o644)
	cases := []struct {
		name string
		edit func(r *TrainRequest)
		want string
	}{
		{"zero photos", func(r *TrainRequest) { r.Photos = nil }, "no photos"},
		{"non-image", func(r *TrainRequest) { r.Photos = append(r.Photos, TrainPhoto{Path: text}) }, "notes.jpg: not a JPEG, PNG or WebP"},
		{"missing photo", func(r *TrainRequest) { r.Photos[0].Path += ".gone" }, "no such file"},
		{"crop outside", func(r *TrainRequest) { r.Photos[0].Crop = image.Rect(10, 10, 50, 50) }, "not inside the 40x40 photo"},
		{"bad word", func(r *TrainRequest) { r.Word = "teddy bear" }, "superordinate word: the superordinate word \"teddy bear\" is 2 CLIP tokens"},
		{"no word", func(r *TrainRequest) { r.Word = " " }, "superordinate word"},
		{"bad name", func(r *TrainRequest) { r.Name = "my disc" }, "name:"},
		{"bad preset", func(r *TrainRequest) { r.Preset = "fast" }, "unknown preset"},
		{"odd size", func(r *TrainRequest) { r.Size = 33 }, "size 33"},
	}
	for _, c := range cases {
		r := good
		r.Photos = slices.Clone(good.Photos)
		c.edit(&r)
		_, err := tr.Start(r)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := tr.Start(TrainRequest{Name: "x", Word: "toy"}); !errors.Is(err, photos.ErrNoPhotos) {
		t.Errorf("zero photos: %v, want ErrNoPhotos", err)
	}
	sug, err := tr.CheckWord("teddy bear")
	if err == nil || !slices.Contains(sug, "bear") || strings.HasPrefix(err.Error(), "train:") {
		t.Errorf("CheckWord(teddy bear) = %v, %v; want suggestions with bear", sug, err)
	}
	if sug, err := tr.CheckWord("toy"); err != nil || sug != nil {
		t.Errorf("CheckWord(toy) = %v, %v", sug, err)
	}
	if tr.Running() != "" {
		t.Errorf("a refused request left %q running", tr.Running())
	}
}

// recorder keeps training events.
type recorder struct {
	mu     sync.Mutex
	events []TrainingEvent
}

func (r *recorder) add(e TrainingEvent) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func (r *recorder) all() []TrainingEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// TestTrainingCancelResumeSaves cancels a run at step 3, "restarts the
// app" (a new studio on the same folders), continues the run from its
// resume file and checks that the concept lands in the library; a preview
// queued during training runs before the next training step.
func TestTrainingCancelResumeSaves(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on the tiny model")
	}
	s, model := openTiny(t)
	tr := trainingOn(t, s)
	req := tinyRequest(t, 20)
	var rec recorder
	tr.OnEvent(rec.add)
	tr.OnEvent(func(e TrainingEvent) {
		if e.Stage == train.StageTrain && e.Step == 3 {
			tr.Cancel()
		}
	})
	done, err := tr.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Start(req); !errors.Is(err, ErrTrainingRunning) {
		t.Errorf("second start: %v", err)
	}
	wait(t, done, "cancelled run")
	evs := rec.all()
	last := evs[len(evs)-1]
	if !last.Done || !errors.Is(last.Err, context.Canceled) {
		t.Fatalf("last event %+v, want cancelled", last)
	}
	if !slices.ContainsFunc(evs, func(e TrainingEvent) bool { return e.Stage == StageCovariance && e.Total > 0 }) {
		t.Error("no covariance progress")
	}
	if _, err := os.Stat(tr.resumePath("disc")); err != nil {
		t.Fatalf("no resume file after cancel: %v", err)
	}
	s.Close()

	// A new studio on the same folders finds the unfinished run.
	s2, err := OpenStudio(Options{ConfigDir: filepath.Dir(filepath.Dir(tr.resumePath("disc")))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Close)
	wait(t, s2.OpenModel(model), "model load")
	tr2 := trainingOn(t, s2)
	libraryChanged := make(chan struct{}, 16)
	s2.Concepts.OnChange(func() { libraryChanged <- struct{}{} })
	un, err := tr2.Unfinished()
	if err != nil || len(un) != 1 || un[0].Name != "disc" || len(un[0].Photos) != 3 {
		t.Fatalf("unfinished runs %+v, %v", un, err)
	}
	var rec2 recorder
	var previewAt, stepNow int
	previewRan := make(chan struct{})
	tr2.OnEvent(rec2.add)
	tr2.OnEvent(func(e TrainingEvent) {
		if e.Stage != train.StageTrain {
			return
		}
		stepNow = e.Step // the training goroutine alone writes it
		if e.Step == 6 {
			s2.Jobs.Submit(jobs.Preview, "preview", func(context.Context) error {
				previewAt = stepNow // runs while training holds no step
				close(previewRan)
				return nil
			})
		}
	})
	done, err = tr2.Start(un[0])
	if err != nil {
		t.Fatal(err)
	}
	wait(t, done, "resumed run")
	<-previewRan
	if previewAt != 6 {
		t.Errorf("the preview queued after step 6 ran at step %d", previewAt)
	}
	evs = rec2.all()
	last = evs[len(evs)-1]
	if last.Err != nil {
		t.Fatalf("resumed run: %v", last.Err)
	}
	i := slices.IndexFunc(evs, func(e TrainingEvent) bool { return e.Stage == train.StageTrain })
	if i < 0 || evs[i].Resumed != 3 || evs[i].Step != 4 {
		t.Fatalf("first training event %+v, want resumed from step 3", evs[i])
	}
	if !last.Done || last.Concept != "disc" || len(last.Losses) != 20 || last.Sample == nil || last.Sample.Bounds().Dx() != 32 {
		t.Fatalf("last event %+v", last)
	}
	lib, err := tr2.Library()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := lib.List()
	if err != nil || len(ents) != 1 || ents[0].Name != "disc" || ents[0].Err != nil || ents[0].Header.Superclass != "toy" || len(ents[0].Thumbnail) == 0 {
		t.Fatalf("library %+v, %v", ents, err)
	}
	// Tied to the model it was trained on, a diffusers folder (as the
	// default model is), so the library offers it with that model.
	if base, err := concepts.BaseHash(context.Background(), model); err != nil || ents[0].Header.CheckBase(base) != nil {
		t.Errorf("concept base %q, model's %q (%v)", ents[0].Header.BaseModel, base, err)
	}
	if un, _ := tr2.Unfinished(); len(un) != 0 {
		t.Errorf("still unfinished: %+v", un)
	}
	// The studio's concept library (the panel's source) heard of it.
	select {
	case <-libraryChanged:
	default:
		t.Error("saving the trained concept did not notify the concept library")
	}
	if infos, err := s2.Concepts.List(); err != nil || !slices.ContainsFunc(infos, func(c ConceptInfo) bool { return c.Name == "disc" }) {
		t.Errorf("studio concepts %+v, %v", infos, err)
	}
	if _, err := os.Stat(tr2.resumePath("disc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resume file left: %v", err)
	}
	// The name is now taken.
	if err := tr2.CheckName("disc"); err == nil || !strings.Contains(err.Error(), "try disc") {
		t.Errorf("taken name: %v", err)
	}
}

func TestNotLearnedMessage(t *testing.T) {
	err := notLearned(fmt.Errorf("%w: the loss on fixed samples did not fall (1, 2); try more steps (--steps), more varied photos", train.ErrNotLearned))
	if !IsNotLearned(err) || strings.Contains(err.Error(), "--steps") || strings.Contains(err.Error(), "train:") ||
		!strings.HasPrefix(err.Error(), "The concept learned nothing usable: the loss on fixed samples did not fall (1, 2); try more steps, more varied photos.") {
		t.Errorf("%v", err)
	}
}

// A run holding the worker lets queued previews go first at each yield,
// and stops when the runner closes.
func TestTrainingHoldYields(t *testing.T) {
	r := jobs.New()
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := acquire(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	h := &hold{runner: r, cur: first, cancel: cancel}
	var ran []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); ran = append(ran, s); mu.Unlock() }
	p := r.Submit(jobs.Preview, "preview", func(context.Context) error { note("preview"); return nil })
	rd := r.Submit(jobs.Render, "render", func(context.Context) error { note("render"); return nil })
	select {
	case <-p.Done():
		t.Fatal("a preview ran while training held the worker")
	case <-time.After(20 * time.Millisecond):
	}
	h.yield(ctx)
	if h.cur == nil || ctx.Err() != nil {
		t.Fatal("yield lost the worker")
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("the queued preview did not run at the yield")
	}
	<-rd.Done()
	mu.Lock()
	if !slices.Equal(ran, []string{"preview", "render"}) {
		t.Errorf("ran %v", ran)
	}
	mu.Unlock()

	// A cancelled run waiting for the worker gives up.
	busy := make(chan struct{})
	r.Submit(jobs.Preview, "long preview", func(context.Context) error { <-busy; return nil })
	h.drop()
	c2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel2() }()
	if _, err := acquire(c2, r); !errors.Is(err, context.Canceled) {
		t.Errorf("acquire after cancel: %v", err)
	}
	close(busy)

	// A closing runner stops the run at its next yield.
	again, err := acquire(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	h.cur = again
	r.Close()
	h.yield(ctx)
	if ctx.Err() == nil {
		t.Error("the run goes on after the runner closed")
	}
}

// TestTrainRequestSettingsNativeSize: the presets fit the model's native
// size (a 64-px model trains at 64 px), an explicit size still wins.
func TestTrainRequestSettingsNativeSize(t *testing.T) {
	for _, c := range []struct {
		preset       string
		size, native int
		want         int
	}{{PresetQuick, 0, 64, 64}, {PresetPaper, 0, 64, 64}, {PresetQuick, 0, 512, 256}, {PresetPaper, 0, 512, 512}, {PresetQuick, 128, 64, 128}} {
		s, err := TrainRequest{Preset: c.preset, Size: c.size}.settings(16, c.native)
		if err != nil || s.Size != c.want {
			t.Errorf("%s, size %d, native %d: %d (%v), want %d", c.preset, c.size, c.native, s.Size, err, c.want)
		}
	}
}
