package app

import (
	"context"
	"image"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/app/preview"
	"github.com/perfusion-studio/perfusion/app/settings"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/sampler"
)

// DefaultSampler is the sampler of a new composition when the settings
// name none.
const DefaultSampler = "dpmpp_2m_karras"

// DefaultComposition is the composition a new session starts with: the
// loaded model's native size (SD1.5's usual 512x512 without a model), 20
// steps, CFG 7.5, the settings' default sampler.
func (s *Studio) DefaultComposition() export.Composition {
	name := s.Settings.Get().DefaultSampler
	if name == "" {
		name = DefaultSampler
	}
	side := 512
	if p, info := s.Models.Current(); p != nil && info.NativeSize > 0 {
		side = info.NativeSize
	}
	return export.Composition{Steps: 20, CFG: 7.5, Sampler: name, Width: side, Height: side, Seed: 1}
}

// SamplerNames lists the samplers a composition may name.
func SamplerNames() []string { return sampler.Names() }

// SamplerLabel is a sampler's display name ("euler_a" -> "Euler a").
func SamplerLabel(name string) string { return pipeline.SamplerLabel(name) }

func samplerLabel(name string) string { return pipeline.SamplerLabel(name) }

// PreviewSettings make the live preview cheaper than the final render.
type PreviewSettings struct {
	// MaxSide bounds the preview's longer side in pixels (the aspect ratio
	// is kept, sides rounded to the model's size multiple); 0 renders at
	// the final size.
	MaxSide int
	// Steps bounds the preview's sampling steps; 0 uses the final steps.
	Steps int
	// Sampler replaces the final sampler; "" keeps it.
	Sampler string
}

// DefaultPreviewSettings: 256 pixels, at most 8 steps, the final sampler.
func DefaultPreviewSettings() PreviewSettings { return PreviewSettings{MaxSide: 256, Steps: 8} }

// previewFromSettings is the preview the settings ask for.
func previewFromSettings(v settings.Settings) PreviewSettings {
	ps := DefaultPreviewSettings()
	if v.PreviewSide > 0 {
		ps.MaxSide = v.PreviewSide
	}
	if v.PreviewSteps > 0 {
		ps.Steps = v.PreviewSteps
	}
	return ps
}

// Apply returns c as the preview renders it; multiple is the model's size
// multiple (64 for SD1.x).
func (ps PreviewSettings) Apply(c export.Composition, multiple int) export.Composition {
	if ps.Steps > 0 && c.Steps > ps.Steps {
		c.Steps = ps.Steps
	}
	if ps.Sampler != "" {
		c.Sampler = ps.Sampler
	}
	long := max(c.Width, c.Height)
	if ps.MaxSide > 0 && long > ps.MaxSide && multiple > 0 {
		scale := func(v int) int {
			r := (v*ps.MaxSide/long + multiple/2) / multiple * multiple
			return max(r, multiple)
		}
		c.Width, c.Height = scale(c.Width), scale(c.Height)
	}
	return c
}

// PreviewSettings returns the live preview's settings.
func (s *Studio) PreviewSettings() PreviewSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.previewSet
}

// SetPreviewSettings changes the live preview's settings for this session
// (the settings' PreviewSide and PreviewSteps set them for good) and
// renders the preview again.
func (s *Studio) SetPreviewSettings(ps PreviewSettings) {
	s.mu.Lock()
	s.previewSet = ps
	last := s.last
	s.mu.Unlock()
	if last != nil {
		s.Compose(*last)
	}
}

// Compose tells the studio the composition changed (prompt, settings,
// concepts, ...): a new live preview is scheduled after the debounce, and
// the preview in flight is cancelled. Without a model nothing renders.
func (s *Studio) Compose(c export.Composition) {
	s.mu.Lock()
	s.last = &c
	s.mu.Unlock()
	if p, _ := s.Models.Current(); p == nil {
		return
	}
	s.preview.Request(s.previewComposition(c))
}

// OnPreview registers fn to receive the live preview's frames: per-step
// approximations, then the decoded image (or the error). fn runs on the job
// worker; it must return quickly and not call back into the studio.
func (s *Studio) OnPreview(fn func(preview.Frame)) { s.preview.OnFrame(fn) }

// previewComposition applies the preview settings for the current model.
func (s *Studio) previewComposition(c export.Composition) export.Composition {
	_, info := s.Models.Current()
	return s.PreviewSettings().Apply(c, info.SizeMultiple)
}

// previewRender is the preview scheduler's RenderFunc.
func (s *Studio) previewRender(ctx context.Context, c export.Composition, onStep func(preview.Step)) (*image.RGBA, error) {
	p, _ := s.Models.Current()
	return s.generate(ctx, p, c, true, onStep)
}
