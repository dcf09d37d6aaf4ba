// Package app holds the services behind Perfusion Studio's screens. It owns
// the application state, background work and its cancellation, and tells the
// screens about changes through OnX hooks. It imports no Fyne widgets, so it
// is tested without a display; the ui package turns hook calls into widget
// updates on the UI thread.
//
// Studio bundles the services: the settings (app/settings), the model
// manager (Models), the job runner that owns the model work (app/jobs), the
// live preview (app/preview), the history of final renders (app/history)
// and PNG export (app/export).
package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/history"
	"github.com/perfusion-studio/perfusion/app/jobs"
	"github.com/perfusion-studio/perfusion/app/preview"
	"github.com/perfusion-studio/perfusion/app/settings"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// StatusNoModel is the status a new Studio starts with.
const StatusNoModel = "No model loaded"

// Options configure OpenStudio. The zero value keeps everything in memory.
type Options struct {
	// ConfigDir holds settings.json, and the data folder unless the
	// settings name another. "" keeps settings in memory and history off.
	ConfigDir string
	// Load loads models; nil is pipeline.Load.
	Load LoadFunc
	// Clock and PreviewDelay drive the preview debounce; nil and 0 are the
	// system clock and preview.DefaultDelay.
	Clock        preview.Clock
	PreviewDelay time.Duration
	// DefaultModel is the built-in model (OpenDefaultModel); nil for none.
	DefaultModel *DefaultModel
	// CLIPVocabulary is openai's bpe_simple_vocab_16e6.txt.gz (the bytes;
	// assets.CLIPVocab), used for models that come without a vocabulary
	// (single-file checkpoints) when none is found beside them, in the
	// Hugging Face cache or in the data folder. nil: such a model fails to
	// load, the error saying where a vocabulary was looked for.
	CLIPVocabulary []byte
	// Captions is the corpus the concepts' covariance C is computed from;
	// nil is the shipped one (tests pass a small one).
	Captions []string
}

// Studio is the service the main window talks to. Its methods are safe for
// concurrent use.
type Studio struct {
	// SetMemoryLimit, when set, is how the program applies a memory budget
	// (pipeline.MemoryBudget of the loaded model and the request size): the
	// studio calls it before every generation. Process-wide GC settings
	// belong to the program, so main sets this hook (to
	// runtime/debug.SetMemoryLimit, in effect) before the first model
	// loads; nil leaves the runtime's defaults.
	SetMemoryLimit func(bytes int64)

	Settings *settings.Store
	Models   *Models
	Jobs     *jobs.Runner
	// History keeps final renders; nil when there is no data folder.
	History *history.Store
	// Concepts is the concept library and what concepts need of the
	// loaded model.
	Concepts *Concepts

	preview *preview.Scheduler
	// encodings keeps prompt encodings across previews and renders, so
	// moving a gate slider does not run the text encoder again.
	encodings *pipeline.EncodingCache

	mu          sync.Mutex
	status      string
	nextHook    int
	onStatus    map[int]func(string) // by registration order
	onTask      listeners[Task]
	onRender    listeners[RenderResult]
	onSweep     listeners[SweepResult]
	previewSet  PreviewSettings
	last        *export.Composition // newest composition asked for
	cancelTasks map[int]taskCancel  // foreground tasks that CancelTask stops
	nextTask    int
	training    *Training // made by Training()
	// The memory budget's parts (see applyMemoryLimit): the newest
	// generation's, and what running trainings need beyond the weights.
	genBudget, trainMemory int64

	lastSeed    uint64 // the last final render's seed, if hasLastSeed
	hasLastSeed bool
}

// NewStudio returns a Studio that keeps everything in memory, with no
// model loaded; its status is StatusNoModel.
func NewStudio() *Studio {
	s, _ := OpenStudio(Options{})
	return s
}

// OpenStudio returns a Studio with the settings in opt.ConfigDir and its
// history in the data folder. The Studio is always usable: if the settings
// file is damaged or the data folder unusable it starts without them and
// the error says so, for the app to show.
func OpenStudio(opt Options) (*Studio, error) {
	var errs []error
	st, _ := settings.Open("")
	if opt.ConfigDir != "" {
		var err error
		st, err = settings.Open(filepath.Join(opt.ConfigDir, settings.FileName))
		errs = append(errs, err)
	}
	dataDir := st.Get().DataDir
	if dataDir == "" {
		dataDir = opt.ConfigDir
	}
	s := &Studio{
		status:     StatusNoModel,
		Settings:   st,
		Jobs:       jobs.New(),
		previewSet: previewFromSettings(st.Get()),
		encodings:  pipeline.NewEncodingCache(0),
	}
	s.Models = newModels(opt.Load, st, dataDir, opt.DefaultModel, string(opt.CLIPVocabulary))
	s.Concepts = newConcepts(s, dataDir, opt.Captions)
	if dataDir != "" {
		errs = append(errs, s.Concepts.libErr)
	}
	if dataDir != "" {
		h, err := history.Open(filepath.Join(dataDir, "history"))
		if err == nil {
			h.SamplerLabel = samplerLabel
			s.History = h
		}
		errs = append(errs, err)
	}
	s.preview = preview.New(s.Jobs, s.previewRender, opt.Clock, opt.PreviewDelay)
	s.Models.OnEvent(s.onModelEvent)
	st.OnChange(func(v settings.Settings) {
		s.Models.applyThreads(v.Threads)
		if ps := previewFromSettings(v); ps != s.PreviewSettings() {
			s.SetPreviewSettings(ps)
		}
	})
	return s, errors.Join(errs...)
}

// Close stops the preview and a training run (keeping its resume file),
// cancels all work and waits for the job worker.
func (s *Studio) Close() {
	s.stopTraining()
	s.preview.Stop()
	s.Models.CancelLoad()
	s.Jobs.Close()
}

// Status returns the latest status message.
func (s *Studio) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// OnStatus registers fn to receive every later status message. fn runs on the
// goroutine that set the status (often a background one), so a screen must
// hand widget changes to its UI thread; fn must not call SetStatus itself.
// The returned function removes the hook (a screen that is disposed calls
// it so the studio no longer reaches it).
func (s *Studio) OnStatus(fn func(msg string)) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onStatus == nil {
		s.onStatus = map[int]func(string){}
	}
	id := s.nextHook
	s.nextHook++
	s.onStatus[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.onStatus, id)
	}
}

// SetStatus records msg as the latest status and passes it to each OnStatus
// hook, in the order they were registered.
func (s *Studio) SetStatus(msg string) {
	s.mu.Lock()
	s.status = msg
	ids := slices.Sorted(maps.Keys(s.onStatus))
	hooks := make([]func(string), len(ids))
	for i, id := range ids {
		hooks[i] = s.onStatus[id]
	}
	s.mu.Unlock()
	for _, fn := range hooks {
		fn(msg)
	}
}

// TaskKind says what a foreground task does (TaskConcepts runs in the
// background, beside previews).
type TaskKind int

// Task kinds.
const (
	TaskLoad     TaskKind = iota // loading a model
	TaskRender                   // a final render
	TaskExport                   // a batch export
	TaskConcepts                 // preparing concepts for a model (its covariance C)
	TaskTraining                 // training a concept (Training; CancelTask leaves it)
)

// Task is the progress of the work the status bar shows: a model load, a
// final render, a batch export or preparing concepts (previews are not
// tasks).
type Task struct {
	Kind     TaskKind
	Label    string        // what is happening, for people
	Fraction float64       // 0 to 1
	ETA      time.Duration // 0 when unknown
	Done     bool          // finished, failed or cancelled
	Err      error         // why it failed; context.Canceled when cancelled
}

// OnTask registers fn to receive task progress, on a background goroutine.
func (s *Studio) OnTask(fn func(Task)) {
	s.onTask.add(fn)
}

func (s *Studio) emitTask(t Task) { s.onTask.emit(t) }

// taskCancel is a foreground task's cancel.
type taskCancel struct {
	kind TaskKind
	fn   func()
}

// CancelTask cancels the running foreground tasks: a model load, renders
// and exports (queued ones too).
func (s *Studio) CancelTask() {
	s.mu.Lock()
	cs := slices.Collect(maps.Values(s.cancelTasks))
	s.mu.Unlock()
	for _, c := range cs {
		c.fn()
	}
}

// CancelTasks cancels the running (and queued) tasks of one kind, leaving
// the others running; TaskTraining stops the training run (see
// Training.Cancel).
func (s *Studio) CancelTasks(kind TaskKind) {
	s.mu.Lock()
	cs := slices.Collect(maps.Values(s.cancelTasks))
	t := s.training
	s.mu.Unlock()
	if kind == TaskTraining && t != nil {
		t.Cancel()
	}
	for _, c := range cs {
		if c.kind == kind {
			c.fn()
		}
	}
}

// addCancel registers a foreground task's cancel; the result removes it.
func (s *Studio) addCancel(kind TaskKind, cancel func()) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelTasks == nil {
		s.cancelTasks = map[int]taskCancel{}
	}
	id := s.nextTask
	s.nextTask++
	s.cancelTasks[id] = taskCancel{kind, cancel}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.cancelTasks, id)
	}
}

// OpenModel starts loading the model at path (see Models.Open); progress
// arrives as TaskLoad tasks and Models events, and CancelTask cancels it.
func (s *Studio) OpenModel(path string) <-chan struct{} {
	done := s.Models.Open(path)
	remove := s.addCancel(TaskLoad, s.Models.CancelLoad)
	go func() {
		<-done
		remove()
	}()
	return done
}

// OpenDefaultModel starts loading the default model, as OpenModel does a
// user's model.
func (s *Studio) OpenDefaultModel() <-chan struct{} {
	done := s.Models.OpenDefault()
	remove := s.addCancel(TaskLoad, s.Models.CancelLoad)
	go func() {
		<-done
		remove()
	}()
	return done
}

// DefaultModelStatus is the status while the default model is in use: what
// it is, and what gives real photos.
func DefaultModelStatus(info ModelInfo) string {
	return fmt.Sprintf("Default model (built-in emoji model, %d×%d) — open your own SD 1.x checkpoint for real photos",
		info.NativeSize, info.NativeSize)
}

// onModelEvent turns model events into tasks and status, and renders the
// preview again with a newly loaded model.
func (s *Studio) onModelEvent(e ModelEvent) {
	name := e.Name
	if name == "" {
		name = modelName(e.Path)
	}
	t := Task{Kind: TaskLoad, Label: "Loading " + name + "…", Fraction: e.Fraction}
	switch {
	case e.Err != nil:
		t.Done, t.Err = true, e.Err
		t.Label = "Loading " + name + " stopped"
		if !errors.Is(e.Err, context.Canceled) {
			s.SetStatus(e.Err.Error())
		} else if p, _ := s.Models.Current(); p == nil {
			s.SetStatus(StatusNoModel)
		} else {
			s.SetStatus("Loading " + name + " cancelled")
		}
	case e.Loaded:
		t.Done, t.Label = true, "Loaded "+name
		if e.Info.Default {
			s.SetStatus(DefaultModelStatus(e.Info))
		} else {
			s.SetStatus(fmt.Sprintf("Model %s loaded", name))
		}
		if p, info := s.Models.Current(); p != nil && info.Path == e.Path {
			s.Concepts.setModel(p, info)
		}
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		if last != nil {
			s.preview.Refresh(s.previewComposition(*last))
		}
	case e.Fraction == 0:
		s.SetStatus("Loading " + name + "…")
	}
	s.emitTask(t)
}
