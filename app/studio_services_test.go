package app

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/preview"
	"github.com/perfusion-studio/perfusion/app/settings"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// wait waits for a channel; the deadline only guards against a hang.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(60 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// openTiny opens a studio on a temporary config folder and loads the tiny
// golden model into it.
func openTiny(t *testing.T) (*Studio, string) {
	t.Helper()
	model := golden.Path(t, "tiny_diffusers")
	s, err := OpenStudio(Options{ConfigDir: t.TempDir(), PreviewDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	wait(t, s.OpenModel(model), "model load")
	if p, _ := s.Models.Current(); p == nil {
		t.Fatalf("tiny model did not load; status %q", s.Status())
	}
	return s, model
}

// tinyComposition is a quick render on the tiny model.
func tinyComposition(s *Studio) export.Composition {
	_, info := s.Models.Current()
	m := info.SizeMultiple
	side := (16 + m - 1) / m * m
	return export.Composition{Prompt: "a red fox", Negative: "blurry", Seed: 7, Steps: 3, CFG: 5, Sampler: "euler_a", Width: 2 * side, Height: side}
}

func TestOpenModelLoadsAndRemembers(t *testing.T) {
	model := golden.Path(t, "tiny_diffusers")
	dir := t.TempDir()
	s, err := OpenStudio(Options{ConfigDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var events []ModelEvent
	var tasks []Task
	s.Models.OnEvent(func(e ModelEvent) { mu.Lock(); events = append(events, e); mu.Unlock() })
	s.OnTask(func(tk Task) { mu.Lock(); tasks = append(tasks, tk); mu.Unlock() })
	// A diffusers folder picked through its model_index.json.
	wait(t, s.OpenModel(filepath.Join(model, "model_index.json")), "model load")

	mu.Lock()
	defer mu.Unlock()
	if len(events) < 3 {
		t.Fatalf("%d events, want start, progress and loaded", len(events))
	}
	last := events[len(events)-1]
	if !last.Loaded || last.Err != nil || last.Info.Name != "tiny_diffusers" || last.Info.SizeMultiple <= 0 || last.Info.Path != model {
		t.Fatalf("last event %+v", last)
	}
	prev := -1.0
	for _, e := range events[:len(events)-1] {
		if e.Loaded || e.Err != nil || e.Fraction < prev || e.Path != model {
			t.Fatalf("event %+v after fraction %v", e, prev)
		}
		prev = e.Fraction
	}
	if tk := tasks[len(tasks)-1]; !tk.Done || tk.Err != nil || tk.Kind != TaskLoad {
		t.Fatalf("last task %+v", tk)
	}
	if !strings.Contains(s.Status(), "tiny_diffusers loaded") {
		t.Errorf("status %q", s.Status())
	}
	// Remembered, on disk too.
	saved, err := settings.Load(filepath.Join(dir, settings.FileName))
	if err != nil || len(saved.RecentModels) != 1 || saved.RecentModels[0] != model {
		t.Fatalf("saved settings %+v, %v", saved, err)
	}
}

func TestOpenModelErrorsKeepCurrentModel(t *testing.T) {
	s, model := openTiny(t)
	dir := t.TempDir()
	txt := filepath.Join(dir, "notes.txt")
	os.WriteFile(txt, []byte("hello"), 0o644)
	broken := filepath.Join(dir, "broken.safetensors")
	os.WriteFile(broken, []byte("not really"), 0o644)
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.safetensors"): "not found",
		txt:    "not a model file",
		broken: "cannot open broken.safetensors",
		dir:    "cannot open",
	} {
		errs := make(chan error, 10)
		s.Models.OnEvent(func(e ModelEvent) {
			if e.Path == path && e.Err != nil {
				errs <- e.Err
			}
		})
		wait(t, s.OpenModel(path), "failed load")
		err := wait(t, errs, "error event")
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q, want it to contain %q", filepath.Base(path), err, want)
		}
		if s.Status() != err.Error() {
			t.Errorf("status %q, want the error", s.Status())
		}
		if _, info := s.Models.Current(); info.Path != model {
			t.Fatalf("current model changed to %q by a failed load", info.Path)
		}
	}
	if recent := s.Settings.Get().RecentModels; len(recent) != 1 {
		t.Errorf("failed loads were remembered: %v", recent)
	}
}

func TestCancelModelLoad(t *testing.T) {
	started := make(chan struct{})
	block := func(ctx context.Context, path string, opt pipeline.LoadOptions) (*pipeline.Pipeline, error) {
		opt.Progress(0.25)
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	s, err := OpenStudio(Options{Load: block})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	errs := make(chan error, 1)
	s.Models.OnEvent(func(e ModelEvent) {
		if e.Err != nil {
			errs <- e.Err
		}
	})
	done := s.OpenModel(t.TempDir()) // a folder passes the early checks
	wait(t, started, "load start")
	if s.Models.Loading() == "" {
		t.Error("Loading() is empty during a load")
	}
	s.CancelTask()
	wait(t, done, "cancelled load")
	if err := wait(t, errs, "cancel event"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if p, _ := s.Models.Current(); p != nil || s.Status() != StatusNoModel || s.Models.Loading() != "" {
		t.Fatalf("after cancel: model %v, status %q, loading %q", p, s.Status(), s.Models.Loading())
	}
}

// The live preview on the tiny model: step approximations, then the
// decoded image at the preview size.
func TestLivePreviewOnTinyModel(t *testing.T) {
	s, _ := openTiny(t)
	var limits []int64
	var mu sync.Mutex
	s.SetMemoryLimit = func(b int64) { mu.Lock(); limits = append(limits, b); mu.Unlock() }
	frames := make(chan preview.Frame, 100)
	s.OnPreview(func(f preview.Frame) { frames <- f })
	c := tinyComposition(s)
	s.SetPreviewSettings(PreviewSettings{Steps: 2})
	s.Compose(c)
	var steps []preview.Frame
	for {
		f := wait(t, frames, "preview frame")
		if f.Err != nil {
			t.Fatal(f.Err)
		}
		if f.Final {
			if b := f.Image.Bounds(); b.Dx() != c.Width || b.Dy() != c.Height {
				t.Fatalf("final preview %v, want %dx%d", b, c.Width, c.Height)
			}
			break
		}
		steps = append(steps, f)
	}
	if len(steps) != 2 || steps[0].Image == nil || steps[1].Step != 2 {
		t.Fatalf("step frames %+v, want 2 with images (preview steps)", steps)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(limits) == 0 || limits[0] <= 0 {
		t.Errorf("memory limit hook calls %v", limits)
	}
}

func TestRenderKeepsHistory(t *testing.T) {
	s, _ := openTiny(t)
	results := make(chan RenderResult, 1)
	s.OnRender(func(r RenderResult) { results <- r })
	c := tinyComposition(s)
	if err := s.Render(c).Wait(); err != nil {
		t.Fatal(err)
	}
	r := wait(t, results, "render result")
	if r.Err != nil || r.SaveErr != nil || r.Image == nil || r.Image.Bounds().Dx() != c.Width {
		t.Fatalf("result %+v", r)
	}
	list, err := s.History.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("history %v, %v", list, err)
	}
	got, err := s.History.Restore(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	want := c
	want.Version, want.Model = export.CompositionVersion, "tiny_diffusers"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored %+v\nwant %+v", got, want)
	}
	// The same composition renders the same image.
	if err := s.Render(got).Wait(); err != nil {
		t.Fatal(err)
	}
	if again := wait(t, results, "second render"); !slices.Equal(again.Image.Pix, r.Image.Pix) {
		t.Error("restored settings render a different image")
	}
}

func TestCancelRender(t *testing.T) {
	s, _ := openTiny(t)
	c := tinyComposition(s)
	c.Steps = 200
	started := make(chan struct{}, 1)
	s.OnTask(func(tk Task) {
		if tk.Kind == TaskRender && tk.Fraction > 0 {
			select {
			case started <- struct{}{}:
			default:
			}
		}
	})
	job := s.Render(c)
	wait(t, started, "first render step")
	s.CancelTask()
	if err := job.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if list, _ := s.History.List(); len(list) != 0 {
		t.Fatalf("cancelled render kept in history: %v", list)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	s := NewStudio()
	defer s.Close()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	img.Pix[5] = 200
	c := export.Composition{Prompt: "fox", Seed: 3, Steps: 4, CFG: 7, Sampler: "euler_a", Width: 8, Height: 8, Model: "m"}
	path := filepath.Join(t.TempDir(), "out") // ".png" is added
	if err := s.ExportPNG(path, img, c, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ImportPNG(path + ".png")
	if err != nil {
		t.Fatal(err)
	}
	c.Version = export.CompositionVersion
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("imported %+v\nwant %+v", got, c)
	}
	if err := s.ExportPNG(path, nil, c, ExportOptions{}); err == nil {
		t.Error("exporting no image: no error")
	}
	// A web UI PNG: the sampler's display name comes back as its name.
	data, _ := export.EncodePNG(img, export.ParametersKey, c.Settings(SamplerLabel).Parameters())
	webui := filepath.Join(t.TempDir(), "webui.png")
	os.WriteFile(webui, data, 0o644)
	if got, err := s.ImportPNG(webui); err != nil || got.Sampler != "euler_a" || got.Seed != 3 {
		t.Fatalf("web UI PNG: %+v, %v", got, err)
	}
}

func TestExportBatch(t *testing.T) {
	s, _ := openTiny(t)
	c := tinyComposition(s)
	c.Steps = 2
	dir := t.TempDir()
	if err := s.ExportBatch(c, 2, dir).Wait(); err != nil {
		t.Fatal(err)
	}
	var pix [][]byte
	for i := range uint64(2) {
		path := filepath.Join(dir, BatchFileName(export.Composition{Model: "tiny_diffusers"}, c.Seed+i))
		got, err := export.ReadCompositionFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seed != c.Seed+i || got.Prompt != c.Prompt || got.Model != "tiny_diffusers" {
			t.Fatalf("image %d settings %+v", i, got)
		}
		data, _ := os.ReadFile(path)
		pix = append(pix, data)
	}
	if slices.Equal(pix[0], pix[1]) {
		t.Error("two seeds gave the same file")
	}
	if err := s.ExportBatch(c, 0, dir).Wait(); err == nil {
		t.Error("batch of 0: no error")
	}
	if err := s.ExportBatch(c, 1, filepath.Join(dir, "missing")).Wait(); err == nil {
		t.Error("missing folder: no error")
	}
}

func TestNoModel(t *testing.T) {
	s := NewStudio()
	defer s.Close()
	c := s.DefaultComposition()
	s.Compose(c) // nothing to render: no frame, no error
	if err := s.Render(c).Wait(); !errors.Is(err, ErrNoModel) {
		t.Fatalf("render without a model: %v", err)
	}
}

func TestRequestSampler(t *testing.T) {
	c := export.Composition{Prompt: "a cat", Steps: 1, Width: 64, Height: 64, Sampler: "Euler a"}
	if r, err := request(c, true); err != nil || r.Sampler != "euler_a" || !r.Previews {
		t.Fatalf("request %+v, %v", r, err)
	}
	c.Sampler = "nonsense"
	if _, err := request(c, false); err == nil {
		t.Fatal("unknown sampler accepted")
	}
}

func TestPreviewSettingsApply(t *testing.T) {
	base := export.Composition{Steps: 30, Sampler: "ddim", Width: 512, Height: 768}
	for _, tc := range []struct {
		ps          PreviewSettings
		w, h, steps int
		sampler     string
	}{
		{PreviewSettings{}, 512, 768, 30, "ddim"},
		{PreviewSettings{MaxSide: 256, Steps: 8}, 192, 256, 8, "ddim"},
		{PreviewSettings{MaxSide: 1024, Steps: 50, Sampler: "euler"}, 512, 768, 30, "euler"},
		{PreviewSettings{MaxSide: 10}, 64, 64, 30, "ddim"},
	} {
		got := tc.ps.Apply(base, 64)
		if got.Width != tc.w || got.Height != tc.h || got.Steps != tc.steps || got.Sampler != tc.sampler {
			t.Errorf("%+v: got %dx%d %d steps %s, want %dx%d %d %s", tc.ps, got.Width, got.Height, got.Steps, got.Sampler, tc.w, tc.h, tc.steps, tc.sampler)
		}
	}
}

func TestDamagedSettingsStillOpen(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, settings.FileName), []byte("{oops"), 0o644)
	s, err := OpenStudio(Options{ConfigDir: dir})
	if err == nil || s == nil {
		t.Fatalf("studio %v, err %v; want a usable studio and the error", s, err)
	}
	defer s.Close()
	if s.History == nil {
		t.Error("history off because of damaged settings")
	}
	if got := s.DefaultComposition().Sampler; got != DefaultSampler {
		t.Errorf("default sampler %q", got)
	}
}

func TestPreviewSettingsFollowSettings(t *testing.T) {
	s := NewStudio()
	defer s.Close()
	if got := s.PreviewSettings(); got != DefaultPreviewSettings() {
		t.Fatalf("preview settings %+v, want the defaults", got)
	}
	if err := s.Settings.Update(func(v *settings.Settings) { v.PreviewSide, v.PreviewSteps = 384, 5 }); err != nil {
		t.Fatal(err)
	}
	if got := s.PreviewSettings(); got.MaxSide != 384 || got.Steps != 5 {
		t.Fatalf("preview settings %+v after a settings change", got)
	}
}

// On the real pipeline a change during a long preview stops it and only
// the new composition's frames follow.
func TestLivePreviewNewestWinsOnTinyModel(t *testing.T) {
	s, _ := openTiny(t)
	s.SetPreviewSettings(PreviewSettings{})
	frames := make(chan preview.Frame, 1000)
	s.OnPreview(func(f preview.Frame) { frames <- f })
	old := tinyComposition(s)
	old.Steps = 500
	s.Compose(old)
	if f := wait(t, frames, "first step of the long preview"); f.Composition.Steps != 500 || f.Final {
		t.Fatalf("first frame %+v", f)
	}
	newer := tinyComposition(s)
	newer.Prompt, newer.Steps = "a blue bird", 2
	s.Compose(newer)
	// Frames of the old request already queued before the change may
	// remain; none may come after the first frame of the new one.
	sawNew := false
	for {
		f := wait(t, frames, "preview frame")
		if f.Err != nil {
			t.Fatal(f.Err)
		}
		isNew := f.Composition.Prompt == newer.Prompt
		if sawNew && !isNew {
			t.Fatalf("frame of the old request after the new one: %+v", f)
		}
		sawNew = sawNew || isNew
		if f.Final {
			if !isNew {
				t.Fatal("the old request finished")
			}
			break
		}
	}
	if !sawNew {
		t.Fatal("no frame of the new request")
	}
}

// The memory limit adds what running trainings need beyond the weights to
// the newest generation's budget, or to the weights before any
// generation, and drops it when they end.
func TestMemoryLimitWithTraining(t *testing.T) {
	var got []int64
	s := &Studio{SetMemoryLimit: func(b int64) { got = append(got, b) }}
	s.applyMemoryLimit(0, 50, 30)  // a training starts before any generation
	s.applyMemoryLimit(100, 0, 0)  // a preview
	s.applyMemoryLimit(0, 20, 30)  // a second training
	s.applyMemoryLimit(0, -50, 30) // the first ends
	s.applyMemoryLimit(80, 0, 0)   // a smaller preview
	s.applyMemoryLimit(0, -20, 30) // the second ends
	want := []int64{80, 150, 170, 120, 100, 80}
	if !slices.Equal(got, want) {
		t.Errorf("limits %v, want %v", got, want)
	}
}
