package main

import (
	"fmt"
	"os"
	"runtime"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"github.com/perfusion-studio/perfusion"
	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/assets"
	"github.com/perfusion-studio/perfusion/ui"
)

// runGUI opens the main window and returns when the app quits.
func runGUI() error {
	if err := checkDisplay(runtime.GOOS, os.Getenv); err != nil {
		return err
	}
	info, err := perfusion.AppInfo()
	if err != nil {
		return fmt.Errorf("start gui: %w", err)
	}
	icon := assets.Icon()
	// A plain `go build` carries no packaged metadata, so give Fyne ours.
	fyneapp.SetMetadata(fyne.AppMetadata{
		ID:      info.ID,
		Name:    info.Name,
		Version: info.Version,
		Build:   info.Build,
		Icon:    icon,
	})
	a, w, err := openWindow(info.ID, info.Name)
	if err != nil {
		return err
	}
	a.SetIcon(icon)
	studio := app.NewStudio()
	studio.SetMemoryLimit = func(bytes int64) { applyMemoryLimit(bytes) }
	ui.NewMainWindow(w, studio, ui.Options{Version: info.Version})
	w.SetMaster()
	w.ShowAndRun()
	return nil
}

// openWindow starts Fyne and creates the main window. Where the display
// named in the environment cannot be opened, GLFW panics on the first
// window; that panic comes back as an error, as nothing has run yet.
func openWindow(id, title string) (a fyne.App, w fyne.Window, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot open the window (%v); the headless commands need no display: see `perfusion help`", r)
		}
	}()
	a = fyneapp.NewWithID(id)
	return a, a.NewWindow(title), nil
}
