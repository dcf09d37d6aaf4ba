//go:build wayland

package main

// displayVar names the display this build of Fyne draws on (Wayland).
const displayVar = "WAYLAND_DISPLAY"
