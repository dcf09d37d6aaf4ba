package ui

import (
	"fmt"
	"image"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app/preview"
)

// Messages of the preview's empty states.
const (
	previewNoModel = "Open a Stable Diffusion 1.x model…"
	previewNoImage = "Type a prompt: the preview appears here as you write."
)

// Preview is the centre panel: the live preview, the final render, or an
// empty state that says what to do (open a model, type a prompt).
type Preview struct {
	onOpenModel func()

	frame   *canvas.Rectangle
	image   *canvas.Image
	empty   *widget.Label
	open    *widget.Button // shown with the no-model state
	caption *widget.Label  // "Preview: step 3 of 8", "Final render", errors
	hasImg  bool
}

func newPreview(onOpenModel func()) *Preview {
	return &Preview{onOpenModel: onOpenModel}
}

func (p *Preview) build() fyne.CanvasObject {
	p.frame = canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	p.frame.StrokeColor = theme.Color(theme.ColorNameSeparator)
	p.frame.StrokeWidth = 1
	p.frame.CornerRadius = theme.InputRadiusSize()
	p.frame.SetMinSize(fyne.NewSize(256, 256))
	p.image = canvas.NewImageFromImage(nil)
	p.image.FillMode = canvas.ImageFillContain
	p.image.Hide()
	p.empty = widget.NewLabelWithStyle(previewNoModel, fyne.TextAlignCenter, fyne.TextStyle{})
	p.empty.Importance = widget.LowImportance
	p.open = widget.NewButtonWithIcon("Open model…", theme.FolderOpenIcon(), p.onOpenModel)
	p.caption = widget.NewLabel("")
	p.caption.Importance = widget.LowImportance
	p.caption.Truncation = fyne.TextTruncateEllipsis
	empty := container.NewCenter(container.NewVBox(p.empty, container.NewCenter(p.open)))
	body := container.NewStack(p.frame, container.NewPadded(p.image), empty)
	return container.NewPadded(container.NewBorder(nil, p.caption, nil, nil, body))
}

// setModel switches the empty state between "open a model" and "type a
// prompt" (or "loading").
func (p *Preview) setModel(loaded bool, loading string) {
	switch {
	case loading != "":
		p.empty.SetText("Loading " + loading + "…")
		p.open.Hide()
	case loaded:
		p.empty.SetText(previewNoImage)
		p.open.Hide()
	default:
		p.empty.SetText(previewNoModel)
		p.open.Show()
	}
	if p.hasImg {
		p.empty.Hide()
		p.open.Hide()
	} else {
		p.empty.Show()
	}
}

// showFrame shows a live preview frame.
func (p *Preview) showFrame(f preview.Frame) {
	switch {
	case f.Err != nil:
		p.caption.SetText("Preview failed: " + f.Err.Error())
		return
	case f.Final:
		p.caption.SetText(fmt.Sprintf("Preview %d×%d, %d steps", f.Composition.Width, f.Composition.Height, f.Composition.Steps))
	default:
		p.caption.SetText(fmt.Sprintf("Preview: step %d of %d", f.Step, f.Total))
	}
	if f.Image != nil {
		p.setImage(f.Image)
	}
}

// showRender shows a final render.
func (p *Preview) showRender(img *image.RGBA, caption string) {
	p.setImage(img)
	p.caption.SetText(caption)
}

// pixelScaleBelow is the image side under which the preview enlarges by
// whole pixels instead of smoothing: the 32-px default model's images
// stay crisp instead of blurring.
const pixelScaleBelow = 128

func (p *Preview) setImage(img *image.RGBA) {
	p.image.ScaleMode = canvas.ImageScaleSmooth
	if b := img.Bounds(); max(b.Dx(), b.Dy()) < pixelScaleBelow {
		p.image.ScaleMode = canvas.ImageScalePixels
	}
	p.image.Image = img
	p.image.Show()
	p.image.Refresh()
	p.hasImg = true
	p.empty.Hide()
	p.open.Hide()
}
