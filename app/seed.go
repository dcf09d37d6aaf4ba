package app

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// SeedMode says which seed a final render uses.
type SeedMode int

// Seed modes.
const (
	SeedFixed  SeedMode = iota // the composition's seed
	SeedRandom                 // a new random seed for every render
	SeedReuse                  // the seed of the last final render
)

// SeedModes lists the modes in the order the composer offers them.
func SeedModes() []SeedMode { return []SeedMode{SeedFixed, SeedRandom, SeedReuse} }

// String is the mode's label for people.
func (m SeedMode) String() string {
	switch m {
	case SeedFixed:
		return "Fixed"
	case SeedRandom:
		return "Random"
	case SeedReuse:
		return "Reuse last"
	}
	return fmt.Sprintf("SeedMode(%d)", int(m))
}

// ParseSeedMode reads a mode's label (case-insensitive).
func ParseSeedMode(s string) (SeedMode, error) {
	for _, m := range SeedModes() {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("seed mode %q: want Fixed, Random or Reuse last", s)
}

// RenderSeed returns the seed a final render in mode uses, seed being the
// composition's: seed itself when fixed, a new one below 2^32 (as the web
// UI draws them) when random, and the last final render's seed when
// reusing (seed when nothing was rendered yet).
func (s *Studio) RenderSeed(mode SeedMode, seed uint64) uint64 {
	switch mode {
	case SeedRandom:
		return uint64(rand.Uint32())
	case SeedReuse:
		if last, ok := s.LastSeed(); ok {
			return last
		}
	}
	return seed
}

// LastSeed returns the seed of the last successful final render, and
// whether there was one in this session.
func (s *Studio) LastSeed() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeed, s.hasLastSeed
}

// rendered records c as the last final render.
func (s *Studio) rendered(seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastSeed, s.hasLastSeed = seed, true
}
