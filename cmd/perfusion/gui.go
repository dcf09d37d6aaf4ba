package main

import (
	"fmt"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"github.com/perfusion-studio/perfusion"
	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/assets"
	"github.com/perfusion-studio/perfusion/ui"
)

// runGUI opens the main window and returns when the app quits.
func runGUI() error {
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
	a := fyneapp.NewWithID(info.ID)
	a.SetIcon(icon)

	w := a.NewWindow(info.Name)
	studio := app.NewStudio()
	studio.SetMemoryLimit = func(bytes int64) { applyMemoryLimit(bytes) }
	ui.NewMainWindow(w, studio, ui.Options{Version: info.Version})
	w.SetMaster()
	w.ShowAndRun()
	return nil
}
