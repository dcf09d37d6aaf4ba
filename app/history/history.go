// Package history keeps every final render in the app's data folder: the
// PNG (with its settings embedded, see export.EncodeComposition) and a JSON
// file with the full settings, both written atomically. Restoring an entry
// returns its settings.
//
// An entry exists once its JSON file exists: the PNG is written first, so a
// crash between the two leaves at worst an orphan PNG, never an entry
// without its image.
package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
)

// Entry is one saved render.
type Entry struct {
	ID          string             `json:"id"`
	Time        time.Time          `json:"time"`
	Composition export.Composition `json:"settings"`
	// Image is the PNG's path (not stored in the JSON: it is derived).
	Image string `json:"-"`
}

// Store is a history folder. Its methods are safe for concurrent use.
type Store struct {
	dir string
	// Now is the clock used to stamp entries; tests replace it.
	Now func() time.Time
	// SamplerLabel maps sampler names to display names for the PNG's
	// parameters chunk; nil keeps names.
	SamplerLabel func(string) string

	mu   sync.Mutex
	last string // last ID handed out, to keep IDs unique within a tick
}

// Open returns the history kept in dir, creating the folder.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("history: no data folder")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return &Store{dir: dir, Now: time.Now}, nil
}

// Dir is the history folder.
func (s *Store) Dir() string { return s.dir }

// Add saves img with its settings c as a new entry.
func (s *Store) Add(img image.Image, c export.Composition) (Entry, error) {
	if img == nil || img.Bounds().Empty() {
		return Entry{}, errors.New("history: no image to save")
	}
	e := Entry{Time: s.Now().UTC(), Composition: c}
	e.Composition.Version = export.CompositionVersion
	e.ID = s.newID(e.Time, c.Seed)
	e.Image = s.path(e.ID, ".png")
	if err := export.SaveComposition(e.Image, img, c, s.SamplerLabel); err != nil {
		return Entry{}, fmt.Errorf("history: save image: %w", err)
	}
	js, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return Entry{}, fmt.Errorf("history: %w", err)
	}
	if err := atomicfile.WriteFile(s.path(e.ID, ".json"), append(js, '\n')); err != nil {
		os.Remove(e.Image)
		return Entry{}, fmt.Errorf("history: save settings: %w", err)
	}
	return e, nil
}

// newID names an entry by its time and seed, adding a counter when two
// entries share both.
func (s *Store) newID(t time.Time, seed uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := t.Format("20060102-150405.000") + "-" + strconv.FormatUint(seed, 10)
	id := base
	for n := 2; id == s.last || fileExists(s.path(id, ".json")); n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	s.last = id
	return id
}

func (s *Store) path(id, ext string) string { return filepath.Join(s.dir, id+ext) }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// List returns the entries, newest first. Damaged entries are skipped and
// reported together in the error, with the good entries still returned.
func (s *Store) List() ([]Entry, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	var out []Entry
	var errs []error
	for _, de := range des {
		name := de.Name()
		if de.IsDir() || strings.HasPrefix(name, ".") || filepath.Ext(name) != ".json" {
			continue
		}
		e, err := s.read(strings.TrimSuffix(name, ".json"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out, errors.Join(errs...)
}

// Restore returns the settings of entry id.
func (s *Store) Restore(id string) (export.Composition, error) {
	e, err := s.read(id)
	if err != nil {
		return export.Composition{}, err
	}
	return e.Composition, nil
}

// Delete removes entry id (its JSON first, so a crash leaves no entry
// without its image).
func (s *Store) Delete(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := os.Remove(s.path(id, ".json")); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := os.Remove(s.path(id, ".png")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

func (s *Store) read(id string) (Entry, error) {
	if err := checkID(id); err != nil {
		return Entry{}, err
	}
	data, err := os.ReadFile(s.path(id, ".json"))
	if err != nil {
		return Entry{}, fmt.Errorf("history: entry %s: %w", id, err)
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, fmt.Errorf("history: entry %s is damaged: %w", id, err)
	}
	if e.ID != id {
		return Entry{}, fmt.Errorf("history: entry %s names itself %q", id, e.ID)
	}
	if e.Composition.Version > export.CompositionVersion {
		return Entry{}, fmt.Errorf("history: entry %s: %w", id, e.Composition.Validate())
	}
	e.Image = s.path(id, ".png")
	return e, nil
}

// checkID refuses IDs that are not plain file names.
func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, `/\`) || strings.HasPrefix(id, ".") {
		return fmt.Errorf("history: bad entry id %q", id)
	}
	return nil
}
