package app

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/history"
	"github.com/perfusion-studio/perfusion/app/preview"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/library"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

func names(list []ConceptInfo) []string {
	var out []string
	for _, c := range list {
		out = append(out, c.Name)
	}
	return out
}

// The library operations, with undo of a delete, on a studio's data
// folder; every operation tells OnChange.
func TestConceptLibraryOperations(t *testing.T) {
	s, err := OpenStudio(Options{ConfigDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := s.Concepts
	if c.Dir() == "" {
		t.Fatal("no library folder")
	}
	var mu sync.Mutex
	changes := 0
	c.OnChange(func() { mu.Lock(); changes++; mu.Unlock() })
	conceptstest.WriteSmall(t, c.Dir(), "tubby", "cat", "abc")
	if err := os.WriteFile(filepath.Join(c.Dir(), "broken.concept"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := c.List()
	if err != nil || !slices.Equal(names(list), []string{"broken", "tubby"}) {
		t.Fatalf("List = %v, %v", names(list), err)
	}
	if list[0].Disabled == "" || list[1].Disabled != "" || list[1].Superclass != "cat" || list[1].Size == 0 || list[1].Beta != float64(float32(0.7)) {
		t.Errorf("List = %+v", list)
	}
	if err := c.Rename("tubby", "bear"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("bear", "no good"); err == nil {
		t.Error("a name with a space was accepted")
	}
	dup, err := c.Duplicate("bear")
	if err != nil || dup != "bear-2" {
		t.Fatalf("Duplicate = %q, %v", dup, err)
	}
	out := filepath.Join(t.TempDir(), "mine")
	if err := c.Export("bear", out); err != nil {
		t.Fatal(err)
	}
	got, err := c.Import(out + library.Ext) // the name is taken: a free one
	if err != nil || got != "bear-3" {
		t.Fatalf("Import = %q, %v", got, err)
	}
	if c.CanUndo() {
		t.Error("CanUndo before any delete")
	}
	if err := c.Delete("bear"); err != nil {
		t.Fatal(err)
	}
	if list, _ := c.List(); slices.Contains(names(list), "bear") {
		t.Error("deleted concept still listed")
	}
	if n, err := c.Undo(); err != nil || n != "bear" {
		t.Fatalf("Undo = %q, %v", n, err)
	}
	if list, _ := c.List(); !slices.Equal(names(list), []string{"bear", "bear-2", "bear-3", "broken"}) {
		t.Errorf("after undo: %v", names(list))
	}
	if _, err := c.Undo(); err == nil {
		t.Error("a second undo succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if changes != 5 {
		t.Errorf("%d change calls, want 5 (rename, duplicate, import, delete, undo)", changes)
	}
}

// A studio without a data folder has no library and says so.
func TestConceptsNoDataFolder(t *testing.T) {
	s := NewStudio()
	defer s.Close()
	if _, err := s.Concepts.List(); err == nil {
		t.Error("List without a data folder succeeded")
	}
	if err := s.Concepts.Delete("x"); err == nil {
		t.Error("Delete without a data folder succeeded")
	}
}

// openTinyConcepts opens a studio (data folder dataDir) with a small
// caption corpus and the tiny model, and writes a concept for it and one
// for another base model into its library.
func openTinyConcepts(t *testing.T, dataDir string) (*Studio, *taskLog) {
	t.Helper()
	caps, err := captions.Generate(48, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStudio(Options{ConfigDir: dataDir, PreviewDelay: time.Millisecond, Captions: caps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	log := &taskLog{}
	s.OnTask(func(tk Task) {
		if tk.Kind == TaskConcepts {
			log.mu.Lock()
			log.tasks = append(log.tasks, tk)
			log.mu.Unlock()
		}
	})
	model := golden.Path(t, "tiny_diffusers")
	wait(t, s.OpenModel(model), "model load")
	p, _ := s.Models.Current()
	if p == nil {
		t.Fatalf("tiny model did not load: %s", s.Status())
	}
	base, err := concepts.BaseHash(context.Background(), model)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Concepts.Dir(), "tubby.concept")); err != nil {
		conceptstest.Write(t, p, s.Concepts.Dir(), "tubby", "cat", base, 0.1)
		conceptstest.Write(t, p, s.Concepts.Dir(), "alien", "dog", "0123456789", 0.1)
	}
	return s, log
}

// taskLog collects TaskConcepts tasks.
type taskLog struct {
	mu    sync.Mutex
	tasks []Task
}

func (l *taskLog) get() []Task {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.tasks)
}

// waitDisabled waits until List marks the concept of another base model.
func waitDisabled(t *testing.T, s *Studio) []ConceptInfo {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		list, err := s.Concepts.List()
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(list, func(c ConceptInfo) bool { return c.Name == "alien" }); i >= 0 && list[i].Disabled != "" {
			return list
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the concept of another base model was never disabled")
	return nil
}

func renderImage(t *testing.T, s *Studio, c export.Composition) (*image.RGBA, error) {
	t.Helper()
	res := make(chan RenderResult, 1)
	var once sync.Once
	s.OnRender(func(r RenderResult) { // hooks of earlier calls stay: send once
		once.Do(func() { res <- r })
	})
	s.Render(c)
	r := wait(t, res, "render")
	return r.Image, r.Err
}

// Renders and previews apply the composition's concepts; C is computed
// once in the background with progress and read from the cache by the
// next studio; concepts of another base model are disabled and refused.
func TestConceptsInRenders(t *testing.T) {
	data := t.TempDir()
	s, _ := openTinyConcepts(t, data)
	list := waitDisabled(t, s)
	for _, c := range list {
		if c.Name == "tubby" && c.Disabled != "" {
			t.Errorf("tubby disabled: %s", c.Disabled)
		}
		if c.Name == "alien" && !strings.Contains(c.Disabled, "0123456789") {
			t.Errorf("alien's reason %q does not name its model", c.Disabled)
		}
	}
	comp := tinyComposition(s)
	base, err := renderImage(t, s, comp)
	if err != nil {
		t.Fatal(err)
	}
	comp.Prompt = "a red <tubby>"
	if _, err := renderImage(t, s, comp); err == nil || !strings.Contains(err.Error(), "<tubby>") {
		t.Errorf("a prompt with a concept the composition lacks: %v", err)
	}
	comp = s.Concepts.Sync(comp)
	if len(comp.Concepts) != 1 || comp.Concepts[0].Name != "tubby" || comp.Concepts[0].Hash == "" || comp.Concepts[0].Locking != "local" {
		t.Fatalf("Sync = %+v", comp.Concepts)
	}
	with, err := renderImage(t, s, comp)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(with.Pix, base.Pix) {
		t.Error("the concept changed nothing")
	}
	comp.Concepts[0].Beta = 0.3
	other, err := renderImage(t, s, comp)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other.Pix, with.Pix) {
		t.Error("β changed nothing")
	}
	// The preview applies concepts too.
	frames := make(chan preview.Frame, 64)
	s.OnPreview(func(f preview.Frame) {
		if f.Final || f.Err != nil {
			frames <- f
		}
	})
	s.Compose(comp)
	for f := wait(t, frames, "preview"); ; f = wait(t, frames, "preview") {
		if f.Err != nil {
			t.Fatalf("preview: %v", f.Err)
		}
		if f.Composition.Prompt == comp.Prompt && f.Image != nil {
			break
		}
	}
	alien := s.Concepts.Sync(export.Composition{Prompt: "a <alien>"})
	c2 := tinyComposition(s)
	c2.Prompt, c2.Concepts = alien.Prompt, alien.Concepts
	if _, err := renderImage(t, s, c2); err == nil || !strings.Contains(err.Error(), "0123456789") {
		t.Errorf("a concept of another base model rendered: %v", err)
	}
	hist, err := s.History.List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(hist, func(e history.Entry) bool {
		return len(e.Composition.Concepts) == 1 && e.Composition.Concepts[0].Beta == 0.3 && e.Composition.Concepts[0].Hash != ""
	}) {
		t.Error("history does not keep the concept with its gate and hash")
	}
}

// C is computed once per model with progress tasks, then read from the
// cache in the data folder by the next studio.
func TestConceptsCovarianceOnce(t *testing.T) {
	data := t.TempDir()
	for run := range 2 {
		s, log := openTinyConcepts(t, data)
		waitDisabled(t, s)
		comp := tinyComposition(s)
		comp.Prompt = "a <tubby>"
		comp = s.Concepts.Sync(comp)
		if _, err := renderImage(t, s, comp); err != nil {
			t.Fatal(err)
		}
		tasks := log.get()
		if len(tasks) == 0 || !tasks[len(tasks)-1].Done || tasks[len(tasks)-1].Err != nil {
			t.Fatalf("run %d: concept tasks %+v", run, tasks)
		}
		progress := slices.ContainsFunc(tasks, func(tk Task) bool { return !tk.Done && tk.Fraction > 0 && strings.Contains(tk.Label, "captions") })
		if run == 0 && !progress {
			t.Errorf("no progress while computing C: %+v", tasks)
		}
		if run == 1 && progress {
			t.Errorf("C computed again instead of read from the cache: %+v", tasks)
		}
		s.Close()
	}
}

// Cancelling the status bar's tasks stops computing C; a later render
// that needs it starts it again.
func TestConceptsCovarianceCancel(t *testing.T) {
	s, _ := openTinyConcepts(t, t.TempDir())
	waitDisabled(t, s)
	comp := tinyComposition(s)
	comp.Prompt = "a <tubby>"
	comp = s.Concepts.Sync(comp)
	s.CancelTask()
	if _, err := renderImage(t, s, comp); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if _, err := renderImage(t, s, comp); err != nil {
		t.Fatalf("render after a cancel: %v", err)
	}
}

// A sweep renders one image per β, at the preview's settings; the images
// differ; a concept the composition lacks is an error.
func TestSweep(t *testing.T) {
	s, _ := openTinyConcepts(t, t.TempDir())
	s.SetPreviewSettings(PreviewSettings{MaxSide: 32, Steps: 2})
	res := make(chan SweepResult, 4)
	s.OnSweep(func(r SweepResult) { res <- r })
	comp := tinyComposition(s)
	comp.Prompt = "a <tubby>"
	comp = s.Concepts.Sync(comp)
	betas := SweepBetas(3)
	if len(betas) != 3 || betas[0] >= betas[2] || betas[0] < MinBeta || betas[2] > MaxBeta {
		t.Fatalf("SweepBetas(3) = %v", betas)
	}
	s.Sweep(comp, "tubby", betas)
	r := wait(t, res, "sweep")
	if r.Err != nil || len(r.Images) != 3 || r.Concept != "tubby" || !slices.Equal(r.Betas, betas) {
		t.Fatalf("sweep %+v", r)
	}
	if slices.Equal(r.Images[0].Pix, r.Images[2].Pix) {
		t.Error("the sweep's images do not differ")
	}
	if b, pc := r.Images[0].Bounds(), s.previewComposition(comp); b.Dx() != pc.Width || b.Dy() != pc.Height {
		t.Errorf("sweep image %v, want the preview's %dx%d", b, pc.Width, pc.Height)
	}
	s.Sweep(comp, "pot", betas)
	if r := wait(t, res, "sweep"); r.Err == nil || !strings.Contains(r.Err.Error(), "pot") {
		t.Errorf("sweep of a concept not used: %v", r.Err)
	}
}
