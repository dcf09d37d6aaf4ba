// Package ui holds Perfusion Studio's Fyne screens. Each screen or panel is
// one struct in one file, with a build method that makes its widgets and
// named onX handlers. Screens talk only to the app package's services; they
// never start the application or open native dialogs, so every screen builds
// and is tested headless with fyne.io/fyne/v2/test.
//
// Service hooks run on background goroutines; a screen applies what they
// report through its injected Do function (fyne.Do by default), never by
// touching widgets directly.
package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"

	"github.com/perfusion-studio/perfusion/app"
)

// Default main window size, in Fyne units.
const (
	defaultWidth  = 1200
	defaultHeight = 780
)

// Options configures a MainWindow. The zero value is usable.
type Options struct {
	// Do runs fn on the UI thread. Nil means fyne.Do; tests pass their own.
	Do func(fn func())
	// Version is shown at the right end of the status bar when not empty.
	Version string
}

// MainWindow is the studio's single window: the concept library on the left,
// the preview in the centre, the composer below it and the status bar along
// the bottom.
type MainWindow struct {
	window fyne.Window
	studio *app.Studio
	do     func(func())

	library  *Library
	preview  *Preview
	composer *Composer
	status   *StatusBar
}

// NewMainWindow fills w with the studio's layout, wired to studio, and gives
// it its default size. The caller shows the window.
func NewMainWindow(w fyne.Window, studio *app.Studio, opt Options) *MainWindow {
	do := opt.Do
	if do == nil {
		do = fyne.Do
	}
	m := &MainWindow{
		window:   w,
		studio:   studio,
		do:       do,
		library:  newLibrary(),
		preview:  newPreview(),
		composer: newComposer(),
		status:   newStatusBar(studio, do, opt.Version),
	}
	w.SetContent(m.build())
	w.Resize(fyne.NewSize(defaultWidth, defaultHeight))
	return m
}

// build lays the panels out: library | (preview over composer), status bar below.
func (m *MainWindow) build() fyne.CanvasObject {
	work := container.NewVSplit(m.preview.build(), m.composer.build())
	work.Offset = 0.66
	body := container.NewHSplit(m.library.build(), work)
	body.Offset = 0.22
	return container.NewBorder(nil, m.status.build(), nil, nil, body)
}
