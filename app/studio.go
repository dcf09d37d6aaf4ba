// Package app holds the services behind Perfusion Studio's screens. It owns
// the application state, background work and its cancellation, and tells the
// screens about changes through OnX hooks. It imports no Fyne widgets, so it
// is tested without a display; the ui package turns hook calls into widget
// updates on the UI thread.
package app

import (
	"slices"
	"sync"
)

// StatusNoModel is the status a new Studio starts with.
const StatusNoModel = "No model loaded"

// Studio is the service the main window talks to. Today it carries the status
// message stream that the status bar shows; model loading, generation and
// concepts will hang off it later. Its methods are safe for concurrent use.
type Studio struct {
	mu       sync.Mutex
	status   string
	onStatus []func(string)
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
func (s *Studio) OnStatus(fn func(msg string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onStatus = append(s.onStatus, fn)
}

// SetStatus records msg as the latest status and passes it to each OnStatus
// hook, in the order they were registered.
func (s *Studio) SetStatus(msg string) {
	s.mu.Lock()
	s.status = msg
	hooks := slices.Clone(s.onStatus)
	s.mu.Unlock()
	for _, fn := range hooks {
		fn(msg)
	}
}
