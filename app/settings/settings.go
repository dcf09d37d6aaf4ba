// Package settings keeps Perfusion Studio's preferences: worker threads,
// the data folder, the default sampler and the recently opened models. They
// live in one JSON file that is replaced atomically on every save, so a
// crash in the middle of a save keeps the previous file whole.
package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// FileName is the settings file inside the configuration folder.
const FileName = "settings.json"

// MaxRecent is how many recent models are remembered.
const MaxRecent = 8

// MaxThreads bounds the threads setting (and the headless commands'
// --threads): far above any core count, it catches typing slips.
const MaxThreads = 1024

// version is written into the file; a newer file is read as far as it goes.
const version = 1

// Settings are the user's preferences. The zero value is valid: it means
// "choose for me" for every field.
type Settings struct {
	Version int `json:"version"`
	// Threads is the number of worker threads the models use, at most
	// MaxThreads; 0 lets the runtime choose (one per physical core).
	Threads int `json:"threads,omitempty"`
	// DataDir is where history and other app data live; "" is the default
	// folder next to the settings file.
	DataDir string `json:"data_dir,omitempty"`
	// DefaultSampler is the sampler new compositions start with (a
	// pipeline sampler name such as "dpmpp_2m_karras"); "" is the app's
	// default.
	DefaultSampler string `json:"default_sampler,omitempty"`
	// PreviewSide bounds the live preview's longer side in pixels and
	// PreviewSteps its sampling steps; 0 is the app's default.
	PreviewSide  int `json:"preview_side,omitempty"`
	PreviewSteps int `json:"preview_steps,omitempty"`
	// RecentModels are model paths, most recent first, at most MaxRecent.
	RecentModels []string `json:"recent_models,omitempty"`
	// ExportWithoutConcepts leaves the concept files out of exported
	// PNGs (by default they go in, so the PNG restores everything).
	ExportWithoutConcepts bool `json:"export_without_concepts,omitempty"`
}

// Validate explains what is wrong with s.
func (s Settings) Validate() error {
	if s.Threads < 0 || s.Threads > MaxThreads {
		return fmt.Errorf("settings: %d threads: want 0 (automatic) to %d", s.Threads, MaxThreads)
	}
	if s.PreviewSide != 0 && (s.PreviewSide < 64 || s.PreviewSide > 2048) {
		return fmt.Errorf("settings: preview size %d: want 64 to 2048 pixels (0 for the default)", s.PreviewSide)
	}
	if s.PreviewSteps < 0 || s.PreviewSteps > 150 {
		return fmt.Errorf("settings: %d preview steps: want 1 to 150 (0 for the default)", s.PreviewSteps)
	}
	if s.DataDir != "" && !filepath.IsAbs(s.DataDir) {
		return fmt.Errorf("settings: data folder %q must be an absolute path", s.DataDir)
	}
	return nil
}

// AddRecent puts path first in RecentModels, removing an older entry of
// the same path and dropping the oldest beyond MaxRecent.
func (s *Settings) AddRecent(path string) {
	if path == "" {
		return
	}
	out := []string{path}
	for _, p := range s.RecentModels {
		if p != path && len(out) < MaxRecent {
			out = append(out, p)
		}
	}
	s.RecentModels = out
}

// Load reads the settings file at path. A missing file gives the zero
// Settings and no error (the first start); a damaged file is an error that
// names it, so the caller can tell the user and start from defaults.
func Load(path string) (Settings, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{Version: version}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("settings: read %s: %w", path, err)
	}
	var s Settings
	if err := json.Unmarshal(data, &s); err != nil {
		return Settings{}, fmt.Errorf("settings: %s is damaged (%v); delete it to start from the defaults", path, err)
	}
	if err := s.Validate(); err != nil {
		return Settings{}, fmt.Errorf("%w (in %s)", err, path)
	}
	if len(s.RecentModels) > MaxRecent {
		s.RecentModels = s.RecentModels[:MaxRecent]
	}
	return s, nil
}

// Save writes s to path atomically, creating the folder if needed.
func Save(path string, s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	s.Version = version
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(data, '\n')); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}

// Store holds the current settings in memory and on disk. Its methods are
// safe for concurrent use. A Store with an empty path keeps the settings in
// memory only (tests, or a machine without a configuration folder).
type Store struct {
	path string

	mu       sync.Mutex
	s        Settings
	onChange []func(Settings)
}

// Open loads the settings at path into a Store. If the file is damaged the
// Store starts from the defaults and the error is returned with it, so the
// app can still start and say why the settings were reset.
func Open(path string) (*Store, error) {
	s, err := Load(path)
	if err != nil {
		s = Settings{Version: version}
	}
	return &Store{path: path, s: s}, err
}

// Path is the settings file ("" for an in-memory Store).
func (st *Store) Path() string { return st.path }

// Get returns a copy of the current settings.
func (st *Store) Get() Settings {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.s
	s.RecentModels = slices.Clone(s.RecentModels)
	return s
}

// Update applies fn to a copy of the settings, validates and saves the
// result, and only then makes it current and tells the OnChange hooks. On
// any error the settings stay as they were.
func (st *Store) Update(fn func(*Settings)) error {
	st.mu.Lock()
	s := st.s
	s.RecentModels = slices.Clone(s.RecentModels)
	fn(&s)
	if err := s.Validate(); err != nil {
		st.mu.Unlock()
		return err
	}
	if st.path != "" {
		if err := Save(st.path, s); err != nil {
			st.mu.Unlock()
			return err
		}
	}
	st.s = s
	hooks := slices.Clone(st.onChange)
	st.mu.Unlock()
	for _, fn := range hooks {
		fn(s)
	}
	return nil
}

// OnChange registers fn to receive the settings after every successful
// Update, on the updating goroutine.
func (st *Store) OnChange(fn func(Settings)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.onChange = append(st.onChange, fn)
}
