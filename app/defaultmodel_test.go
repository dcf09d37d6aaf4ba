package app

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/app/settings"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// testDefault is a default model made of a copy of the tiny diffusers
// model; installs counts the Install calls.
func testDefault(t *testing.T) (def *DefaultModel, installed string, installs *atomic.Int32) {
	t.Helper()
	installed = filepath.Join(t.TempDir(), "cache", "0123abcd")
	golden.CopyDir(t, golden.Path(t, "tiny_diffusers"), installed)
	installs = new(atomic.Int32)
	return &DefaultModel{Name: "Default emoji model", Install: func() (string, error) {
		installs.Add(1)
		return installed, nil
	}}, installed, installs
}

func TestDefaultModelStartsAndComesBack(t *testing.T) {
	user := golden.Path(t, "tiny_diffusers")
	def, installed, installs := testDefault(t)
	dir := t.TempDir()
	s, err := OpenStudio(Options{ConfigDir: dir, DefaultModel: def})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var events []ModelEvent
	s.Models.OnEvent(func(e ModelEvent) { events = append(events, e) })
	if !s.Models.HasDefault() {
		t.Fatal("HasDefault false with a default model")
	}

	wait(t, s.OpenDefaultModel(), "default model load")
	p, info := s.Models.Current()
	if p == nil {
		t.Fatalf("default model did not load; status %q", s.Status())
	}
	if !info.Default || info.Name != "Default emoji model" || info.Path != installed ||
		info.NativeSize != p.NativeSize() || info.SizeMultiple != p.SizeMultiple() {
		t.Fatalf("info %+v", info)
	}
	if first := events[0]; !first.Default || first.Name != "Default emoji model" || first.Path != "" {
		t.Errorf("first event %+v, want the default model before its install", first)
	}
	if last := events[len(events)-1]; !last.Loaded || last.Path != installed || !last.Default {
		t.Errorf("last event %+v", last)
	}
	if got, want := s.Status(), DefaultModelStatus(info); got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	if st := s.Status(); !strings.Contains(st, "Default model") || !strings.Contains(st, "open your own SD 1.x checkpoint") {
		t.Errorf("status %q does not say the default model is in use", st)
	}
	if c := s.DefaultComposition(); c.Width != info.NativeSize || c.Height != info.NativeSize {
		t.Errorf("default composition %dx%d, want the native %d", c.Width, c.Height, info.NativeSize)
	}
	if r := s.Settings.Get().RecentModels; len(r) != 0 {
		t.Errorf("recent models %q after the default model", r)
	}

	// A user's model replaces it and is remembered.
	wait(t, s.OpenModel(user), "user model load")
	if _, info := s.Models.Current(); info.Default || info.Path != user || info.Name != "tiny_diffusers" {
		t.Fatalf("after opening the user's model: %+v", info)
	}
	if st := s.Status(); !strings.Contains(st, "tiny_diffusers loaded") {
		t.Errorf("status %q", st)
	}

	// Back to the default model; its folder opened by hand counts as it too.
	wait(t, s.OpenDefaultModel(), "default model load")
	if _, info := s.Models.Current(); !info.Default {
		t.Fatalf("after returning to the default model: %+v", info)
	}
	wait(t, s.OpenModel(installed), "default folder load")
	if _, info := s.Models.Current(); !info.Default || info.Name != "Default emoji model" {
		t.Fatalf("its folder opened by hand: %+v", info)
	}
	if n := installs.Load(); n != 2 {
		t.Errorf("Install called %d times, want once per OpenDefaultModel (2)", n)
	}
	saved, err := settings.Load(filepath.Join(dir, settings.FileName))
	if err != nil || len(saved.RecentModels) != 1 || saved.RecentModels[0] != user {
		t.Fatalf("recent models %q (%v), want only the user's model", saved.RecentModels, err)
	}
}

func TestDefaultModelInstallFails(t *testing.T) {
	boom := errors.New("disk full")
	s, err := OpenStudio(Options{DefaultModel: &DefaultModel{Name: "Default emoji model",
		Install: func() (string, error) { return "", boom }}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var last ModelEvent
	s.Models.OnEvent(func(e ModelEvent) { last = e })
	wait(t, s.OpenDefaultModel(), "default model load")
	if !errors.Is(last.Err, boom) || !strings.Contains(last.Err.Error(), "default model") {
		t.Fatalf("last event %+v", last)
	}
	if p, _ := s.Models.Current(); p != nil {
		t.Error("a model is current")
	}
	if st := s.Status(); !strings.Contains(st, "disk full") {
		t.Errorf("status %q", st)
	}
}

func TestNoDefaultModel(t *testing.T) {
	s := NewStudio()
	defer s.Close()
	if s.Models.HasDefault() {
		t.Fatal("HasDefault true without one")
	}
	var last ModelEvent
	s.Models.OnEvent(func(e ModelEvent) { last = e })
	wait(t, s.OpenDefaultModel(), "default model load")
	if last.Err == nil || !strings.Contains(last.Err.Error(), "no default model") {
		t.Fatalf("last event %+v", last)
	}
}

// TestDefaultModelConceptsKey checks that concepts made on the default
// model are tied to its content, not to where it was installed: two
// installs in other folders have the same base hash, and the studio's
// concept state uses it.
func TestDefaultModelConceptsKey(t *testing.T) {
	def, installed, _ := testDefault(t)
	other := filepath.Join(t.TempDir(), "elsewhere")
	golden.CopyDir(t, installed, other)
	ctx := context.Background()
	a, err := concepts.BaseHash(ctx, installed)
	if err != nil {
		t.Fatal(err)
	}
	b, err := concepts.BaseHash(ctx, other)
	if err != nil || a == "" || a != b {
		t.Fatalf("base hashes %q and %q (%v): want one, non-empty", a, b, err)
	}
	s, err := OpenStudio(Options{DefaultModel: def})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wait(t, s.OpenDefaultModel(), "default model load")
	s.Concepts.mu.Lock()
	m := s.Concepts.model
	s.Concepts.mu.Unlock()
	if m == nil {
		t.Fatal("no concept state for the default model")
	}
	select {
	case <-m.hashed:
	case <-time.After(60 * time.Second):
		t.Fatal("base hash not computed")
	}
	if m.hErr != nil || m.base != a {
		t.Fatalf("concept base %q (%v), want %q", m.base, m.hErr, a)
	}
}
