package ui

import (
	"strconv"
	"testing"

	"github.com/perfusion-studio/perfusion/app"
)

// renderSeed renders with the render shortcut and returns the seed the
// render used, checking the seed field shows it.
func (s *studioWindow) renderSeed(t *testing.T) uint64 {
	t.Helper()
	s.m.lastImage = nil
	s.m.menus.item(shortcutRender).Action()
	s.q.pumpUntil(t, "the final render", func() bool { return s.m.lastImage != nil })
	if got := s.m.composer.seed.Text; got != strconv.FormatUint(s.m.lastComp.Seed, 10) {
		t.Fatalf("seed field %q, the render used %d", got, s.m.lastComp.Seed)
	}
	return s.m.lastComp.Seed
}

func TestSeedModeSelect(t *testing.T) {
	s := newStudioWindow(t, Options{}, app.Options{})
	s.loadTiny(t)
	s.small(t)
	c := s.m.composer
	if c.seedMode.Selected != app.SeedFixed.String() || len(c.seedMode.Options) != 3 {
		t.Fatalf("seed mode %q of %v, want Fixed of three", c.seedMode.Selected, c.seedMode.Options)
	}
	c.seed.SetText("42")
	if got := s.renderSeed(t); got != 42 {
		t.Fatalf("fixed: rendered seed %d, want 42", got)
	}
	if got := s.renderSeed(t); got != 42 {
		t.Fatalf("fixed, again: rendered seed %d, want 42", got)
	}

	c.seedMode.SetSelected(app.SeedRandom.String())
	first := s.renderSeed(t)
	second := s.renderSeed(t)
	if first == 42 && second == 42 || first == second || first >= 1<<32 || second >= 1<<32 {
		t.Fatalf("random: seeds %d then %d", first, second)
	}

	// Reuse: the field shows the last render's seed at once, and a render
	// uses it whatever the field says.
	c.seedMode.SetSelected(app.SeedReuse.String())
	if c.seed.Text != strconv.FormatUint(second, 10) {
		t.Fatalf("reuse: field %q, want the last render's %d", c.seed.Text, second)
	}
	c.seed.SetText("7")
	if got := s.renderSeed(t); got != second {
		t.Fatalf("reuse: rendered seed %d, want %d", got, second)
	}

	// Restoring a composition keeps its seed: back to fixed.
	comp, err := c.composition()
	if err != nil {
		t.Fatal(err)
	}
	comp.Seed = 11
	s.m.restore(comp)
	if c.mode() != app.SeedFixed {
		t.Fatalf("after a restore the mode is %v", c.mode())
	}
	if got := s.renderSeed(t); got != 11 {
		t.Fatalf("restored seed 11 rendered as %d", got)
	}
}
