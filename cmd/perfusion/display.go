package main

import "fmt"

// checkDisplay says why the window cannot open on goos with the
// environment read through getenv, before Fyne tries (GLFW panics without
// a display). On Linux and the BSDs the window needs an X11 display
// (DISPLAY), or a Wayland one (WAYLAND_DISPLAY) in a build with the wayland
// tag; macOS and Windows always have one.
func checkDisplay(goos string, getenv func(string) string) error {
	switch goos {
	case "linux", "freebsd", "netbsd", "openbsd", "dragonfly":
	default:
		return nil
	}
	if getenv(displayVar) != "" {
		return nil
	}
	return fmt.Errorf("no display (%s is not set), so the window cannot open; the headless commands need none: see `perfusion help`", displayVar)
}
