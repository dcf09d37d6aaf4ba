package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/perfusion-studio/perfusion/app/settings"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// Model is a loaded model (an SD 1.x pipeline).
type Model = pipeline.Pipeline

// LoadOptions are a model load's options (see pipeline.LoadOptions).
type LoadOptions = pipeline.LoadOptions

// LoadFunc loads a model; the app uses pipeline.Load, tests may wrap it.
type LoadFunc func(ctx context.Context, path string, opt LoadOptions) (*Model, error)

// ErrNoModel is the error of work that needs a model when none is loaded.
var ErrNoModel = errors.New("no model loaded: open a Stable Diffusion 1.x model (.safetensors, .ckpt or a diffusers folder)")

// ModelInfo describes the loaded model.
type ModelInfo struct {
	Path string // the file or folder it was loaded from
	Name string // file name without extension, or folder name
	// Hash is the web UI's short model hash ("" for a diffusers folder, or
	// when the file could not be hashed).
	Hash string
	// SizeMultiple is what image sides must be a multiple of (64 for SD1.x).
	SizeMultiple int
}

// ModelEvent is one step of loading a model.
type ModelEvent struct {
	Path     string
	Fraction float64   // 0 to 1 while loading
	Loaded   bool      // the model is loaded and current (Info says which)
	Info     ModelInfo // set when Loaded
	Err      error     // loading failed or was cancelled (context.Canceled)
}

// Models loads models off the caller's goroutine, one load at a time, and
// holds the current one. Its methods are safe for concurrent use.
type Models struct {
	load     LoadFunc
	settings *settings.Store
	dataDir  string

	mu      sync.Mutex
	current *pipeline.Pipeline
	info    ModelInfo
	cancel  context.CancelFunc // of the load in progress
	loading string             // its path
	done    chan struct{}      // closed when it ends
	hooks   listeners[ModelEvent]
}

// newModels returns a model manager; load nil is pipeline.Load. Loaded
// models are added to the recent models of st (may be nil); dataDir is
// searched for a CLIP vocabulary.
func newModels(load LoadFunc, st *settings.Store, dataDir string) *Models {
	if load == nil {
		load = pipeline.Load
	}
	return &Models{load: load, settings: st, dataDir: dataDir}
}

// OnEvent registers fn to receive every loading event. fn runs on the
// loading goroutine; it must not call Open or CancelLoad synchronously.
func (m *Models) OnEvent(fn func(ModelEvent)) {
	m.hooks.add(fn)
}

// Current returns the loaded model and its description, or nil.
func (m *Models) Current() (*pipeline.Pipeline, ModelInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current, m.info
}

// Loading returns the path being loaded, or "".
func (m *Models) Loading() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loading
}

// Open starts loading the model at path in the background, cancelling a
// load in progress. The current model stays current until the new one has
// loaded, and stays if loading fails. Progress, success and failure arrive
// through OnEvent; the returned channel is closed when the load has ended.
func (m *Models) Open(path string) <-chan struct{} {
	path = ModelPath(path)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.mu.Lock()
	if m.cancel != nil {
		m.cancel()
	}
	prev := m.done
	m.cancel, m.loading, m.done = cancel, path, done
	m.mu.Unlock()
	go func() {
		defer close(done)
		defer cancel()
		if prev != nil {
			<-prev // one load at a time: memory for two is plenty
		}
		m.run(ctx, path, done)
	}()
	return done
}

// CancelLoad cancels the load in progress, if any.
func (m *Models) CancelLoad() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		m.cancel()
	}
}

// run loads path and makes it current.
func (m *Models) run(ctx context.Context, path string, done chan struct{}) {
	emit := func(e ModelEvent) {
		e.Path = path
		m.hooks.emit(e)
	}
	finish := func() {
		m.mu.Lock()
		if m.done == done {
			m.cancel, m.loading, m.done = nil, "", nil
		}
		m.mu.Unlock()
	}
	defer finish()

	emit(ModelEvent{})
	if err := checkModelPath(path); err != nil {
		emit(ModelEvent{Err: err})
		return
	}
	hash := make(chan string, 1)
	go func() {
		h, _ := pipeline.ModelHash(ctx, path) // a missing hash only leaves it out of PNGs
		hash <- h
	}()
	p, err := m.load(ctx, path, pipeline.LoadOptions{
		DataDir:  m.dataDir,
		Progress: func(f float64) { emit(ModelEvent{Fraction: f}) },
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = context.Canceled
		} else {
			err = explainLoadError(path, err)
		}
		emit(ModelEvent{Err: err})
		return
	}
	info := ModelInfo{Path: path, Name: modelName(path), Hash: <-hash, SizeMultiple: p.SizeMultiple()}
	if m.settings != nil {
		if n := m.settings.Get().Threads; n > 0 {
			p.Engine.B.SetThreads(n)
		}
		// The model is usable even if the settings cannot be saved.
		_ = m.settings.Update(func(s *settings.Settings) { s.AddRecent(path) })
	}
	m.mu.Lock()
	m.current, m.info = p, info
	m.mu.Unlock()
	finish()
	emit(ModelEvent{Loaded: true, Fraction: 1, Info: info})
}

// ModelPath is the model a picked or dropped path stands for: a diffusers
// folder's model_index.json stands for the folder (file dialogs pick files).
func ModelPath(path string) string {
	if filepath.Base(path) == "model_index.json" {
		return filepath.Dir(path)
	}
	return path
}

// checkModelPath explains early what is wrong with a path that cannot be a
// model, before the loader's more technical messages.
func checkModelPath(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("model %s not found: it may have been moved or deleted", path)
	case err != nil:
		return fmt.Errorf("model %s cannot be read: %w", path, err)
	case st.IsDir():
		return nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".safetensors", ".ckpt", ".pt", ".pth":
		return nil
	}
	return fmt.Errorf("%s is not a model file: choose a Stable Diffusion 1.x .safetensors or .ckpt file, or a diffusers folder", filepath.Base(path))
}

// explainLoadError adds the model's name and what to do to a loader error.
func explainLoadError(path string, err error) error {
	return fmt.Errorf("cannot open %s: %w", filepath.Base(path), err)
}

// modelName is the display name of the model at path.
func modelName(path string) string {
	base := filepath.Base(filepath.Clean(path))
	if ext := filepath.Ext(base); ext != "" && !isDir(path) {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// applyThreads sets the worker threads of the current model (0 leaves it).
func (m *Models) applyThreads(n int) {
	if p, _ := m.Current(); p != nil && n > 0 {
		p.Engine.B.SetThreads(n)
	}
}
