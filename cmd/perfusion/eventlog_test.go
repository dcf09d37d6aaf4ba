package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/storage"

	"github.com/perfusion-studio/perfusion/app"
)

// readEvents parses the event lines of out, ignoring other lines.
func readEvents(t *testing.T, out string) []event {
	t.Helper()
	var events []event
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, eventPrefix)
		if !ok {
			continue
		}
		var e event
		if err := json.Unmarshal([]byte(rest), &e); err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
		events = append(events, e)
	}
	return events
}

// dropWindow records the drop handler the window is given.
type dropWindow struct {
	fyne.Window // nil: only SetOnDropped is called
	onDropped   func(fyne.Position, []fyne.URI)
}

func (w *dropWindow) SetOnDropped(fn func(fyne.Position, []fyne.URI)) { w.onDropped = fn }

func TestEventLogDrop(t *testing.T) {
	var out bytes.Buffer
	inner := &dropWindow{}
	w := withEventLog(inner, &eventLog{w: &out})
	var got []fyne.URI
	w.SetOnDropped(func(_ fyne.Position, uris []fyne.URI) { got = uris })
	uris := []fyne.URI{storage.NewFileURI("/tmp/a b.jpg"), storage.NewFileURI("/tmp/c.png")}
	inner.onDropped(fyne.NewPos(3, 4), uris)
	if !slices.Equal(got, uris) {
		t.Errorf("the window's handler got %v, want %v", got, uris)
	}
	events := readEvents(t, out.String())
	want := []string{uris[0].String(), uris[1].String()}
	if len(events) != 1 || events[0].Event != "drop" || !slices.Equal(events[0].URIs, want) {
		t.Errorf("log %q, want one drop event of %q", out.String(), want)
	}

	// Without a log the window is left as it is.
	if w := withEventLog(inner, nil); w != fyne.Window(inner) {
		t.Errorf("withEventLog(w, nil) = %T, want w itself", w)
	}
}

func TestEventLogStudio(t *testing.T) {
	var out bytes.Buffer
	failed := errors.New("broken weights")
	s, err := app.OpenStudio(app.Options{Load: func(context.Context, string, app.LoadOptions) (*app.Model, error) {
		return nil, failed
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	(&eventLog{w: &out}).watch(s)
	model := filepath.Join(t.TempDir(), "m.safetensors")
	if err := os.WriteFile(model, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	<-s.OpenModel(model)
	s.SetStatus("hello")

	events := readEvents(t, out.String())
	var modelErr, status bool
	for _, e := range events {
		switch {
		case e.Event == "model" && e.Path == model && strings.Contains(e.Error, "broken weights"):
			modelErr = true
		case e.Event == "status" && e.Text == "hello":
			status = true
		case e.Event == "model" && e.Error == "":
			t.Errorf("model event %+v for a load that failed", e)
		}
	}
	if !modelErr || !status {
		t.Errorf("log:\n%s\nwant the failed load of %s and the status", out.String(), model)
	}

	// A nil log writes nothing and registers nothing.
	var nilLog *eventLog
	nilLog.watch(s)
	nilLog.write(event{Event: "status"})
}
