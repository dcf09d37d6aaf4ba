package app

import (
	"testing"
)

func TestSeedModes(t *testing.T) {
	for _, m := range SeedModes() {
		if got, err := ParseSeedMode(m.String()); err != nil || got != m {
			t.Errorf("ParseSeedMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseSeedMode("sometimes"); err == nil {
		t.Error("unknown seed mode: no error")
	}
	s, _ := openTiny(t)
	if got := s.RenderSeed(SeedFixed, 9); got != 9 {
		t.Errorf("fixed: seed %d, want 9", got)
	}
	if got := s.RenderSeed(SeedReuse, 9); got != 9 {
		t.Errorf("reuse before any render: seed %d, want the composition's 9", got)
	}
	seen := map[uint64]bool{}
	for range 4 {
		v := s.RenderSeed(SeedRandom, 9)
		if v >= 1<<32 {
			t.Fatalf("random seed %d is not below 2^32", v)
		}
		seen[v] = true
	}
	if len(seen) < 2 {
		t.Errorf("four random seeds were all %v", seen)
	}
	c := tinyComposition(s)
	c.Seed = 1234
	if err := s.Render(c).Wait(); err != nil {
		t.Fatal(err)
	}
	if last, ok := s.LastSeed(); !ok || last != 1234 {
		t.Fatalf("LastSeed = %d, %v after rendering seed 1234", last, ok)
	}
	if got := s.RenderSeed(SeedReuse, 9); got != 1234 {
		t.Errorf("reuse: seed %d, want the last render's 1234", got)
	}
	if got := s.RenderSeed(SeedFixed, 9); got != 9 {
		t.Errorf("fixed after a render: seed %d, want 9", got)
	}
	// A failed render does not count.
	c.Seed, c.Steps = 77, 0
	if err := s.Render(c).Wait(); err == nil {
		t.Fatal("render of 0 steps: no error")
	}
	if last, _ := s.LastSeed(); last != 1234 {
		t.Errorf("a failed render changed the last seed to %d", last)
	}
}
