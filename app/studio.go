// Package app holds the services behind Perfusion Studio's screens. It owns
// the application state, background work and its cancellation, and tells the
// screens about changes through OnX hooks. It imports no Fyne widgets, so it
// is tested without a display; the ui package turns hook calls into widget
// updates on the UI thread.
package app

import (
	"maps"
	"slices"
	"sync"
)

// StatusNoModel is the status a new Studio starts with.
const StatusNoModel = "No model loaded"

// Studio is the service the main window talks to. Today it carries the status
// message stream that the status bar shows; model loading, generation and
// concepts will hang off it later. Its methods are safe for concurrent use.
type Studio struct {
	// SetMemoryLimit, when set, is how the program applies a memory budget
	// (pipeline.MemoryBudget of the loaded model and the request size): the
	// generation service calls it after loading a model and before a
	// generation. Process-wide GC settings belong to the program, so main
	// sets this hook (to runtime/debug.SetMemoryLimit, in effect) before
	// the first model loads; nil leaves the runtime's defaults.
	SetMemoryLimit func(bytes int64)

	mu       sync.Mutex
	status   string
	nextHook int
	onStatus map[int]func(string) // by registration order
}

// NewStudio returns a Studio whose status is StatusNoModel.
func NewStudio() *Studio {
	return &Studio{status: StatusNoModel}
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
