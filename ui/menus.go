package ui

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/settings"
)

// Keyboard shortcuts (Ctrl on Linux and Windows, Cmd on macOS).
var (
	shortcutOpen   = &desktop.CustomShortcut{KeyName: fyne.KeyO, Modifier: fyne.KeyModifierShortcutDefault}
	shortcutRender = &desktop.CustomShortcut{KeyName: fyne.KeyReturn, Modifier: fyne.KeyModifierShortcutDefault}
	shortcutExport = &desktop.CustomShortcut{KeyName: fyne.KeyE, Modifier: fyne.KeyModifierShortcutDefault}
	shortcutUndo   = &desktop.CustomShortcut{KeyName: fyne.KeyZ, Modifier: fyne.KeyModifierShortcutDefault}
)

// menus is the main menu. Its shortcuts work wherever the focus is: Fyne
// tries main-menu shortcuts before the focused widget's.
type menus struct {
	m      *MainWindow
	recent *fyne.MenuItem
	main   *fyne.MainMenu
}

func newMenus(m *MainWindow) *menus { return &menus{m: m} }

func (u *menus) install() {
	m := u.m
	open := fyne.NewMenuItem("Open model…", m.onOpenModel)
	open.Shortcut = shortcutOpen
	u.recent = fyne.NewMenuItem("Open recent", nil)
	useDefault := fyne.NewMenuItem("Use default model", m.onUseDefaultModel)
	useDefault.Disabled = !m.studio.Models.HasDefault()
	render := fyne.NewMenuItem("Render", m.onRender)
	render.Shortcut = shortcutRender
	exp := fyne.NewMenuItem("Export PNG…", m.onExport)
	exp.Shortcut = shortcutExport
	batch := fyne.NewMenuItem("Export batch of seeds…", m.onExportBatch)
	addPhotos := fyne.NewMenuItem("Add photos…", m.onAddPhotos)
	hist := fyne.NewMenuItem("History…", m.onHistory)
	prefs := fyne.NewMenuItem("Settings…", u.onSettings)
	file := fyne.NewMenu("File", open, u.recent, useDefault, addPhotos, fyne.NewMenuItemSeparator(), render, exp, batch,
		fyne.NewMenuItemSeparator(), hist, prefs)
	undo := fyne.NewMenuItem("Undo delete concept", m.onUndoDelete)
	if runtime.GOOS != "darwin" { // see onUndoKey
		undo.Shortcut = shortcutUndo
	}
	about := fyne.NewMenuItem("About", u.onAbout)
	u.main = fyne.NewMainMenu(file, fyne.NewMenu("Edit", undo), fyne.NewMenu("Help", about))
	u.refreshRecent()
	m.window.SetMainMenu(u.main)
	// Also on the canvas, for drivers without a main menu.
	for sc, fn := range map[fyne.Shortcut]func(){shortcutOpen: m.onOpenModel, shortcutRender: m.onRender, shortcutExport: m.onExport} {
		m.window.Canvas().AddShortcut(sc, func(fyne.Shortcut) { fn() })
	}
	m.window.Canvas().AddShortcut(&fyne.ShortcutUndo{}, func(fyne.Shortcut) { m.onUndoKey() })
	m.studio.Settings.OnChange(func(settings.Settings) { m.do(u.refreshRecent) })
}

// item returns the menu item with the given shortcut, or nil.
func (u *menus) item(sc fyne.Shortcut) *fyne.MenuItem {
	for _, menu := range u.main.Items {
		for _, it := range menu.Items {
			if it.Shortcut != nil && it.Shortcut.ShortcutName() == sc.ShortcutName() {
				return it
			}
		}
	}
	return nil
}

// onUndoKey is Ctrl/Cmd-Z. The driver turns those keys into
// fyne.ShortcutUndo and gives it to the focused widget when that takes
// shortcuts (a text entry: its own undo of typing), else to the canvas,
// which calls this: the last library delete comes back. The Edit menu's
// item names the keys with a desktop.CustomShortcut, whose name never
// matches ShortcutUndo's, so the menu (tried first) does not take the keys
// from an entry; clicking it always undoes the delete. On macOS the native
// menu would take Cmd-Z before the window, so there the item shows no
// shortcut.
func (m *MainWindow) onUndoKey() {
	if f, ok := m.window.Canvas().Focused().(fyne.Shortcutable); ok {
		f.TypedShortcut(&fyne.ShortcutUndo{})
		return
	}
	m.onUndoDelete()
}

// refreshRecent rebuilds the recent models submenu from the settings.
func (u *menus) refreshRecent() {
	if u.recent == nil {
		return
	}
	var items []*fyne.MenuItem
	for _, p := range u.m.studio.Settings.Get().RecentModels {
		items = append(items, fyne.NewMenuItem(filepath.Base(p), func() { u.m.openModel(p) }))
	}
	if len(items) == 0 {
		none := fyne.NewMenuItem("No recent models", nil)
		none.Disabled = true
		items = append(items, none)
	}
	u.recent.ChildMenu = fyne.NewMenu("", items...)
	if u.main != nil {
		u.main.Refresh()
	}
}

// onSettings edits threads, data folder and default sampler.
func (u *menus) onSettings() {
	m := u.m
	cur := m.studio.Settings.Get()
	threads := widget.NewEntry()
	threads.SetText(strconv.Itoa(cur.Threads))
	threads.Validator = func(s string) error {
		if n, err := strconv.Atoi(s); err != nil || n < 0 || n > settings.MaxThreads {
			return fmt.Errorf("0 (automatic) to %d", settings.MaxThreads)
		}
		return nil
	}
	dataDir := widget.NewEntry()
	dataDir.SetText(cur.DataDir)
	dataDir.SetPlaceHolder("default")
	var labels []string
	for _, n := range app.SamplerNames() {
		labels = append(labels, app.SamplerLabel(n))
	}
	sampler := widget.NewSelect(labels, nil)
	sampler.SetSelected(app.SamplerLabel(m.studio.DefaultComposition().Sampler))
	ps := m.studio.PreviewSettings()
	previewSide := widget.NewSelect([]string{"128", "192", "256", "320", "384", "512"}, nil)
	previewSide.SetSelected(strconv.Itoa(ps.MaxSide))
	previewSteps := widget.NewEntry()
	previewSteps.SetText(strconv.Itoa(ps.Steps))
	previewSteps.Validator = func(s string) error {
		_, err := parseSteps(s)
		return err
	}
	embed := widget.NewCheck("Put the concepts used in exported PNGs", nil)
	embed.SetChecked(!cur.ExportWithoutConcepts)
	items := []*widget.FormItem{
		widget.NewFormItem("Threads", threads),
		widget.NewFormItem("Data folder", dataDir),
		widget.NewFormItem("Default sampler", sampler),
		widget.NewFormItem("Preview size", previewSide),
		widget.NewFormItem("Preview steps", previewSteps),
		widget.NewFormItem("Export", embed),
	}
	items[0].HintText = "0 uses one per physical core"
	items[1].HintText = "takes effect at the next start"
	items[3].HintText = "longer side of the live preview, in pixels"
	items[5].HintText = "dropping such a PNG restores its concepts too"
	dialog.ShowForm("Settings", "Save", "Cancel", items, func(ok bool) {
		if !ok {
			return
		}
		n, _ := strconv.Atoi(threads.Text)
		side, _ := strconv.Atoi(previewSide.Selected)
		steps, _ := parseSteps(previewSteps.Text)
		name := ""
		for _, s := range app.SamplerNames() {
			if app.SamplerLabel(s) == sampler.Selected {
				name = s
			}
		}
		err := m.studio.Settings.Update(func(s *settings.Settings) {
			s.Threads, s.DataDir, s.DefaultSampler = n, dataDir.Text, name
			s.PreviewSide, s.PreviewSteps = side, steps
			s.ExportWithoutConcepts = !embed.Checked
		})
		if err != nil {
			m.showError("Cannot save the settings", err)
		}
	}, m.window)
}

func (u *menus) onAbout() {
	md := fyne.CurrentApp().Metadata()
	msg := fmt.Sprintf("%s %s\n\nPersonalise Stable Diffusion 1.x on your own machine.\n\n"+
		"Built with Fyne (BSD-3-Clause) and spago (BSD-2-Clause); the built-in CLIP vocabulary is OpenAI's (MIT License, Copyright (c) 2021 OpenAI).", md.Name, md.Version)
	u.m.showInfo("About", msg)
}
