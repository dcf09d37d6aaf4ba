package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"
	"github.com/sqweek/dialog"

	"github.com/perfusion-studio/perfusion"
	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/assets"
	"github.com/perfusion-studio/perfusion/ui"
)

// configFolder is the app's folder under the user's configuration folder:
// settings.json, and the data folder (history) unless the settings move it.
const configFolder = "perfusion-studio"

// guiOptions are the command line's settings for the window.
type guiOptions struct {
	model string // absolute path of the model to open at start; "" for the default model
}

// runGUI opens the main window and returns when the app quits.
func runGUI(opt guiOptions) error {
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

	studioOpt := app.Options{DefaultModel: defaultModel(), CLIPVocabulary: assets.CLIPVocab()}
	if dir, err := os.UserConfigDir(); err == nil {
		studioOpt.ConfigDir = filepath.Join(dir, configFolder)
	}
	studio, studioErr := app.OpenStudio(studioOpt)
	defer studio.Close()
	studio.SetMemoryLimit = func(bytes int64) { applyMemoryLimit(bytes) }

	var events *eventLog
	if os.Getenv(envTestLog) != "" {
		events = &eventLog{w: os.Stderr}
		events.watch(studio) // before the window's hooks: logged, then shown
	}
	ui.NewMainWindow(withEventLog(w, events), studio, ui.Options{
		Version:         info.Version,
		PickModel:       pickModel,
		PickSavePNG:     pickSavePNG,
		PickConcept:     pickConcept,
		PickSaveConcept: pickSaveConcept,
	})
	if studioErr != nil {
		studio.SetStatus(studioErr.Error())
	}
	if opt.model != "" {
		studio.OpenModel(opt.model)
	} else {
		studio.OpenDefaultModel()
	}
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

// pickModel shows the native open dialog for a model. An error means no
// native dialog could be shown (the UI then shows Fyne's).
func pickModel() (path string, ok bool, err error) {
	return nativeDialog(func() (string, error) {
		return dialog.File().Title("Open a Stable Diffusion 1.x model").
			Filter("Stable Diffusion 1.x model (.safetensors, .ckpt)", "safetensors", "ckpt").
			Filter("Diffusers folder (its model_index.json)", "json").
			Load()
	})
}

// pickSavePNG shows the native save dialog for a PNG.
func pickSavePNG(suggested string) (path string, ok bool, err error) {
	return nativeDialog(func() (string, error) {
		return dialog.File().Title("Export PNG").Filter("PNG image", "png").SetStartFile(suggested).Save()
	})
}

// pickConcept shows the native open dialog for a concept file.
func pickConcept() (path string, ok bool, err error) {
	return nativeDialog(func() (string, error) {
		return dialog.File().Title("Import a concept").Filter("Perfusion concept", "concept").Load()
	})
}

// pickSaveConcept shows the native save dialog for a concept file.
func pickSaveConcept(suggested string) (path string, ok bool, err error) {
	return nativeDialog(func() (string, error) {
		return dialog.File().Title("Export concept").Filter("Perfusion concept", "concept").SetStartFile(suggested).Save()
	})
}

// nativeDialog runs a sqweek/dialog call, telling a cancel (ok false) from
// a failure. The library panics where it has no display to use (GTK could
// not start): that is a failure too. The dialog's GTK calls stay on one OS
// thread.
func nativeDialog(show func() (string, error)) (path string, ok bool, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() {
		if v := recover(); v != nil {
			path, ok, err = "", false, fmt.Errorf("native dialog: %v", v)
		}
	}()
	path, err = show()
	switch {
	case errors.Is(err, dialog.ErrCancelled):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("native dialog: %w", err)
	}
	return path, true, nil
}
