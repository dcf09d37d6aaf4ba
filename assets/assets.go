// Package assets holds the files built into the application: its icon, the
// default model and the CLIP vocabulary.
package assets

import (
	_ "embed"

	"fyne.io/fyne/v2"
)

// iconPNG is icon.png, drawn by ./internal/mkicon; read-only.
//
//go:embed icon.png
var iconPNG []byte

// Icon returns the 512x512 application icon (the same file FyneApp.toml names).
func Icon() fyne.Resource {
	return fyne.NewStaticResource("icon.png", iconPNG)
}
