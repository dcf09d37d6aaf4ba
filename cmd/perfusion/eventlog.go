package main

import (
	"encoding/json"
	"io"
	"sync"

	"fyne.io/fyne/v2"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/preview"
)

// envTestLog names the environment variable that, when not empty, has the
// window write one line per event (model loaded, preview frame, files
// dropped, status) to stderr, for tests that drive the real window.
const envTestLog = "PERFUSION_TEST_LOG"

// eventPrefix starts every event line; JSON follows it.
const eventPrefix = "perfusion-event "

// event is one line of the event log. Fields not set are left out.
type event struct {
	Event  string   `json:"event"` // "model", "preview", "drop", "status"
	Path   string   `json:"path,omitempty"`
	Prompt string   `json:"prompt,omitempty"`
	Width  int      `json:"width,omitempty"`
	Height int      `json:"height,omitempty"`
	Step   int      `json:"step,omitempty"`  // a preview's step (of Total)
	Total  int      `json:"total,omitempty"` // a preview's steps
	Final  bool     `json:"final,omitempty"` // the decoded preview
	URIs   []string `json:"uris,omitempty"`
	Text   string   `json:"text,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// eventLog writes events as lines "perfusion-event {json}". A nil
// *eventLog writes nothing.
type eventLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *eventLog) write(e event) {
	if l == nil {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return // cannot happen: strings and ints only
	}
	line := append([]byte(eventPrefix), append(b, '\n')...)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(line) // one write per line, so lines never interleave
}

// watch logs the studio's model loads, preview frames and status messages.
// Registered before the main window's own hooks, the log line of a preview
// is written before the window shows it.
func (l *eventLog) watch(s *app.Studio) {
	if l == nil {
		return
	}
	s.Models.OnEvent(func(e app.ModelEvent) {
		switch {
		case e.Loaded:
			l.write(event{Event: "model", Path: e.Path})
		case e.Err != nil:
			l.write(event{Event: "model", Path: e.Path, Error: e.Err.Error()})
		}
	})
	s.OnPreview(func(f preview.Frame) {
		c := f.Composition
		e := event{Event: "preview", Prompt: c.Prompt, Width: c.Width, Height: c.Height, Step: f.Step, Total: f.Total, Final: f.Final}
		if f.Err != nil {
			e.Error = f.Err.Error()
		}
		l.write(e)
	})
	s.OnStatus(func(msg string) { l.write(event{Event: "status", Text: msg}) })
}

// loggedWindow is a window whose drop handler logs each drop before the
// handler runs.
type loggedWindow struct {
	fyne.Window
	log *eventLog
}

// SetOnDropped installs fn behind a log of the dropped URIs.
func (w loggedWindow) SetOnDropped(fn func(fyne.Position, []fyne.URI)) {
	w.Window.SetOnDropped(func(pos fyne.Position, uris []fyne.URI) {
		e := event{Event: "drop"}
		for _, u := range uris {
			e.URIs = append(e.URIs, u.String())
		}
		w.log.write(e)
		fn(pos, uris)
	})
}

// withEventLog returns w wrapped so that drops are logged, or w itself
// when there is no log.
func withEventLog(w fyne.Window, l *eventLog) fyne.Window {
	if l == nil {
		return w
	}
	return loggedWindow{Window: w, log: l}
}
