package app

import (
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/app/preview"
)

// Moving a concept's gate (β, τ) re-renders without running the text
// encoder again, for renders and previews, with local and global key
// locking; a new prompt does encode.
func TestGateChangesReuseEncodings(t *testing.T) {
	s, _ := openTinyConcepts(t, t.TempDir())
	comp := tinyComposition(s)
	comp.Prompt = "a red <tubby>"
	comp = s.Concepts.Sync(comp)
	first, err := renderImage(t, s, comp)
	if err != nil {
		t.Fatal(err)
	}
	st := s.EncodingStats()
	if st.Misses == 0 {
		t.Fatal("the render encoded nothing through the cache")
	}
	comp.Concepts[0].Beta = 0.3
	moved, err := renderImage(t, s, comp)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(moved.Pix, first.Pix) {
		t.Error("β changed nothing")
	}
	comp.Concepts[0].Tau = 0.05
	if _, err := renderImage(t, s, comp); err != nil {
		t.Fatal(err)
	}
	if got := s.EncodingStats(); got.Misses != st.Misses || got.Hits < st.Hits+2 {
		t.Fatalf("after moving β and τ: %+v, before %+v: the text encoder ran again", got, st)
	}
	// The preview (smaller, fewer steps) reuses the same encodings.
	st = s.EncodingStats()
	frames := make(chan preview.Frame, 64)
	s.OnPreview(func(f preview.Frame) {
		if f.Final || f.Err != nil {
			frames <- f
		}
	})
	comp.Concepts[0].Beta = 0.5
	s.Compose(comp)
	for f := wait(t, frames, "preview"); ; f = wait(t, frames, "preview") {
		if f.Err != nil {
			t.Fatalf("preview: %v", f.Err)
		}
		if f.Composition.Concepts[0].Beta == 0.5 && f.Image != nil {
			break
		}
	}
	if got := s.EncodingStats(); got.Misses != st.Misses {
		t.Fatalf("the preview ran the text encoder: %+v, before %+v", got, st)
	}
	// Global key locking re-encodes with the superclass once, then reuses it.
	comp.Concepts[0].Locking = "global"
	if _, err := renderImage(t, s, comp); err != nil {
		t.Fatal(err)
	}
	st = s.EncodingStats()
	comp.Concepts[0].Beta = 0.8
	if _, err := renderImage(t, s, comp); err != nil {
		t.Fatal(err)
	}
	if got := s.EncodingStats(); got.Misses != st.Misses {
		t.Fatalf("global locking, β moved: %+v, before %+v", got, st)
	}
	comp.Prompt = "a blue <tubby>"
	if _, err := renderImage(t, s, comp); err != nil {
		t.Fatal(err)
	}
	if got := s.EncodingStats(); got.Misses == st.Misses {
		t.Fatal("a new prompt was not encoded")
	}
}
