//go:build !wayland

package main

// displayVar names the display this build of Fyne draws on (X11).
const displayVar = "DISPLAY"
