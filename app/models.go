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
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
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
	// SizeMultiple is what image sides must be a multiple of (8 for SD1.x).
	SizeMultiple int
	// NativeSize is the image side the model was trained at (512 for
	// SD1.x, 64 for the default model): new compositions start there.
	NativeSize int
	// Default is set for the built-in default model.
	Default bool
}

// DefaultModel is the built-in model the app starts on (Options.DefaultModel).
type DefaultModel struct {
	// Name is its display name ("Default emoji model").
	Name string
	// Install makes the model a folder on disk and returns its path; it is
	// called at every opening, so it must be quick when the folder is
	// already there (assets.InstallDefaultModel is).
	Install func() (string, error)
}

// ModelEvent is one step of loading a model.
type ModelEvent struct {
	Path     string    // "" for the default model until it is installed
	Name     string    // the model's display name
	Default  bool      // the default model is loading
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
	def      *DefaultModel // nil: none
	vocab    string        // the fallback CLIP vocabulary (pipeline.LoadOptions.FallbackBPE)

	mu      sync.Mutex
	defPath string // where the default model was installed, once it was
	current *pipeline.Pipeline
	info    ModelInfo
	cancel  context.CancelFunc // of the load in progress
	loading string             // its path
	done    chan struct{}      // closed when it ends
	hooks   listeners[ModelEvent]
}

// newModels returns a model manager; load nil is pipeline.Load. Loaded
// models other than the default model def (may be nil) are added to the
// recent models of st (may be nil); dataDir is searched for a CLIP
// vocabulary, and vocab (openai's merges file, "" for none) is used when
// none is found.
func newModels(load LoadFunc, st *settings.Store, dataDir string, def *DefaultModel, vocab string) *Models {
	if load == nil {
		load = pipeline.Load
	}
	return &Models{load: load, settings: st, dataDir: dataDir, def: def, vocab: vocab}
}

// HasDefault reports whether there is a default model to open.
func (m *Models) HasDefault() bool { return m.def != nil }

// DefaultName is the default model's display name ("" for none).
func (m *Models) DefaultName() string {
	if m.def == nil {
		return ""
	}
	return m.def.Name
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

// Loading returns the path being loaded (the default model's name while
// it is installed and loaded), or "".
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
	return m.open(ModelPath(path), false)
}

// OpenDefault is Open for the default model: it is installed (see
// DefaultModel.Install), then loaded. Without a default model the load
// fails at once with an error event.
func (m *Models) OpenDefault() <-chan struct{} {
	return m.open("", true)
}

// open starts loading path, or the default model.
func (m *Models) open(path string, def bool) <-chan struct{} {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.mu.Lock()
	if m.cancel != nil {
		m.cancel()
	}
	prev := m.done
	m.cancel, m.loading, m.done = cancel, path, done
	if def && m.def != nil {
		m.loading = m.def.Name
	}
	m.mu.Unlock()
	go func() {
		defer close(done)
		defer cancel()
		if prev != nil {
			<-prev // one load at a time: memory for two is plenty
		}
		m.run(ctx, path, def, done)
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

// run loads path, or the default model, and makes it current.
func (m *Models) run(ctx context.Context, path string, def bool, done chan struct{}) {
	install := def
	m.mu.Lock()
	if !def && m.defPath != "" && sameFile(path, m.defPath) {
		def = true // its folder opened by hand
	}
	m.mu.Unlock()
	name := modelName(path)
	if def && m.def != nil {
		name = m.def.Name
	}
	emit := func(e ModelEvent) {
		e.Path, e.Name, e.Default = path, name, def
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
	if install {
		var err error
		if path, err = m.installDefault(); err != nil {
			emit(ModelEvent{Err: err})
			return
		}
	}
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
		DataDir:     m.dataDir,
		FallbackBPE: m.vocab,
		Progress:    func(f float64) { emit(ModelEvent{Fraction: f}) },
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = context.Canceled
		} else {
			label := filepath.Base(path)
			if def {
				label = name
			}
			err = explainLoadError(label, err)
		}
		emit(ModelEvent{Err: err})
		return
	}
	info := ModelInfo{Path: path, Name: name, Hash: <-hash, SizeMultiple: p.SizeMultiple(),
		NativeSize: p.NativeSize(), Default: def}
	if m.settings != nil {
		p.Engine.B.SetThreads(threadCount(m.settings.Get().Threads))
		// The model is usable even if the settings cannot be saved. The
		// default model has its own menu item, and its cache path is no
		// place to remember.
		if !def {
			_ = m.settings.Update(func(s *settings.Settings) { s.AddRecent(path) })
		}
	}
	m.mu.Lock()
	m.current, m.info = p, info
	m.mu.Unlock()
	finish()
	emit(ModelEvent{Loaded: true, Fraction: 1, Info: info})
}

// installDefault installs the default model and remembers where.
func (m *Models) installDefault() (string, error) {
	if m.def == nil || m.def.Install == nil {
		return "", errors.New("this build has no default model: open a Stable Diffusion 1.x model (.safetensors, .ckpt or a diffusers folder)")
	}
	path, err := m.def.Install()
	if err != nil {
		return "", fmt.Errorf("cannot open the default model: %w", err)
	}
	m.mu.Lock()
	m.defPath = path
	m.mu.Unlock()
	return path, nil
}

// sameFile reports whether a and b name the same file or folder.
func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
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

// explainLoadError adds the model's name to a loader error.
func explainLoadError(name string, err error) error {
	return fmt.Errorf("cannot open %s: %w", name, err)
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

// applyThreads sets the worker threads of the current model to those of
// the threads setting n (see threadCount).
func (m *Models) applyThreads(n int) {
	if p, _ := m.Current(); p != nil {
		p.Engine.B.SetThreads(threadCount(n))
	}
}

// threadCount is the number of worker threads of the threads setting n:
// n itself, or for 0 (automatic) the number of physical cores, so that
// going back to automatic undoes an earlier choice.
func threadCount(n int) int {
	if n > 0 {
		return n
	}
	return cpu.DefaultThreads()
}
