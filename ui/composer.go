package ui

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/export"
)

// sizeChoices are the image sides offered before a model is loaded: those
// of SD 1.x (sizeOptions(512, 8)).
var sizeChoices = []int{256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960, 1024}

// sizeOptions are the image sides offered for a model of native side
// native whose sides must be multiples of multiple: half to twice the
// native side, in eighths of it rounded up to the multiple (SD 1.x: 256
// to 1024 by 64; the 64-pixel default model: 32 to 128 by 16). A model's
// native side is a multiple of its size multiple.
func sizeOptions(native, multiple int) []int {
	multiple = max(multiple, 1)
	step := (max(native/8, 1) + multiple - 1) / multiple * multiple
	var out []int
	for v := native / 2; v <= 2*native; v += step {
		if v > 0 && v%multiple == 0 {
			out = append(out, v)
		}
	}
	if !slices.Contains(out, native) && native%multiple == 0 {
		out = append(out, native)
		slices.Sort(out)
	}
	return out
}

// Composer is the panel below the preview: the prompt and negative prompt
// with the Render and Export buttons on the left; on the right the concept
// strength sliders and the sampling settings (seed, steps, CFG, sampler,
// size).
type Composer struct {
	onChange func() // any input changed
	onRender func()
	onExport func()

	prompt        *widget.Entry
	negative      *widget.Entry
	slidersTitle  *widget.Label
	slidersEmpty  *widget.Label
	slidersColumn *fyne.Container // one slider row per concept in the prompt
	concepts      conceptSliders

	seed     *widget.Entry
	dice     *widget.Button
	seedMode *widget.Select // app.SeedMode labels
	// lastSeed is the last final render's seed (app.Studio.LastSeed),
	// shown when the mode becomes "reuse"; nil for none.
	lastSeed func() (uint64, bool)
	steps    *widget.Entry
	cfg      *widget.Slider
	cfgValue *widget.Label
	sampler  *widget.Select
	width    *widget.Select
	height   *widget.Select
	render   *widget.Button
	export   *widget.Button

	applying bool // setComposition is filling the widgets
}

func newComposer(onChange, onRender, onExport func()) *Composer {
	return &Composer{onChange: onChange, onRender: onRender, onExport: onExport}
}

func (c *Composer) build() fyne.CanvasObject {
	c.prompt = widget.NewMultiLineEntry()
	c.prompt.SetPlaceHolder("Describe the image…")
	c.prompt.Wrapping = fyne.TextWrapWord
	c.prompt.SetMinRowsVisible(3)
	c.prompt.OnChanged = func(string) { c.changed() }
	c.negative = widget.NewEntry()
	c.negative.SetPlaceHolder("Negative prompt: what to avoid")
	c.negative.OnChanged = func(string) { c.changed() }
	promptTitle := widget.NewLabelWithStyle("Prompt", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	c.render = widget.NewButtonWithIcon("Render", theme.MediaPlayIcon(), c.onRender)
	c.render.Importance = widget.HighImportance
	c.export = widget.NewButtonWithIcon("Export PNG…", theme.DocumentSaveIcon(), c.onExport)
	buttons := container.NewHBox(c.render, c.export)
	promptBox := container.NewBorder(promptTitle, container.NewVBox(c.negative, buttons), nil, nil, c.prompt)

	c.slidersTitle = widget.NewLabelWithStyle("Concept strength", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	c.slidersEmpty = widget.NewLabel("Concepts written <name> in the prompt get their sliders here: click a concept in the library to add it.")
	c.slidersEmpty.Wrapping = fyne.TextWrapWord
	c.slidersEmpty.Importance = widget.LowImportance
	c.concepts.changed = c.changed
	c.slidersColumn = c.concepts.build(c.slidersEmpty)

	right := container.NewVBox(c.slidersTitle, c.slidersColumn, widget.NewSeparator(), c.buildSettings())
	split := container.NewHSplit(promptBox, container.NewVScroll(right))
	split.Offset = 0.55
	return container.NewPadded(split)
}

// buildSettings makes the sampling settings form.
func (c *Composer) buildSettings() fyne.CanvasObject {
	c.seed = widget.NewEntry()
	c.seed.Validator = func(s string) error {
		_, err := parseSeed(s)
		return err
	}
	c.seed.OnChanged = func(string) { c.changed() }
	c.dice = widget.NewButtonWithIcon("", theme.ViewRefreshIcon(), c.onRandomSeed)
	var modes []string
	for _, m := range app.SeedModes() {
		modes = append(modes, m.String())
	}
	c.seedMode = widget.NewSelect(modes, c.onSeedMode)
	c.seedMode.SetSelected(app.SeedFixed.String())
	c.steps = widget.NewEntry()
	c.steps.Validator = func(s string) error {
		_, err := parseSteps(s)
		return err
	}
	c.steps.OnChanged = func(string) { c.changed() }
	c.cfg = widget.NewSlider(1, 20)
	c.cfg.Step = 0.5
	c.cfgValue = widget.NewLabel("")
	c.cfg.OnChanged = func(v float64) {
		c.cfgValue.SetText(strconv.FormatFloat(v, 'f', -1, 64))
		c.changed()
	}
	var labels []string
	for _, n := range app.SamplerNames() {
		labels = append(labels, app.SamplerLabel(n))
	}
	c.sampler = widget.NewSelect(labels, func(string) { c.changed() })
	sides := make([]string, len(sizeChoices))
	for i, v := range sizeChoices {
		sides[i] = strconv.Itoa(v)
	}
	c.width = widget.NewSelect(sides, func(string) { c.changed() })
	c.height = widget.NewSelect(slices.Clone(sides), func(string) { c.changed() })
	size := container.NewHBox(c.width, widget.NewLabel("×"), c.height)
	form := widget.NewForm(
		widget.NewFormItem("Seed", container.NewBorder(nil, nil, nil, container.NewHBox(c.dice, c.seedMode), c.seed)),
		widget.NewFormItem("Steps", c.steps),
		widget.NewFormItem("CFG", container.NewBorder(nil, nil, nil, c.cfgValue, c.cfg)),
		widget.NewFormItem("Sampler", c.sampler),
		widget.NewFormItem("Size", size),
	)
	return form
}

// changed reports a user change (not one made by setComposition).
func (c *Composer) changed() {
	if !c.applying && c.onChange != nil {
		c.onChange()
	}
}

// onRandomSeed picks a new seed below 2^32 (as the web UI does).
func (c *Composer) onRandomSeed() {
	c.seed.SetText(strconv.FormatUint(uint64(rand.Uint32()), 10))
}

// onSeedMode follows the seed mode select: reusing shows the last render's
// seed, so that the preview uses it too.
func (c *Composer) onSeedMode(string) {
	if c.mode() != app.SeedReuse || c.lastSeed == nil {
		return
	}
	if seed, ok := c.lastSeed(); ok {
		c.seed.SetText(strconv.FormatUint(seed, 10)) // previews it
	}
}

// mode returns the selected seed mode.
func (c *Composer) mode() app.SeedMode {
	m, err := app.ParseSeedMode(c.seedMode.Selected)
	if err != nil {
		return app.SeedFixed
	}
	return m
}

// showSeed shows the seed a render used without scheduling a preview.
func (c *Composer) showSeed(seed uint64) {
	c.applying = true
	defer func() { c.applying = false }()
	c.seed.SetText(strconv.FormatUint(seed, 10))
}

// setComposition shows comp in the widgets without reporting changes.
func (c *Composer) setComposition(comp export.Composition) {
	c.applying = true
	defer func() { c.applying = false }()
	c.prompt.SetText(comp.Prompt)
	c.negative.SetText(comp.Negative)
	c.seed.SetText(strconv.FormatUint(comp.Seed, 10))
	c.seedMode.SetSelected(app.SeedFixed.String()) // a restored seed stays
	c.steps.SetText(strconv.Itoa(comp.Steps))
	c.cfg.SetValue(comp.CFG)
	c.cfgValue.SetText(strconv.FormatFloat(comp.CFG, 'f', -1, 64))
	c.sampler.SetSelected(app.SamplerLabel(comp.Sampler))
	c.concepts.set(comp.Concepts)
	for _, s := range []struct {
		sel *widget.Select
		v   int
	}{{c.width, comp.Width}, {c.height, comp.Height}} {
		v := strconv.Itoa(s.v)
		if !slices.Contains(s.sel.Options, v) {
			s.sel.SetOptions(append(s.sel.Options, v))
		}
		s.sel.SetSelected(v)
	}
}

// setSizes offers the sides of a model (see sizeOptions) and selects
// width x height, without reporting a change.
func (c *Composer) setSizes(native, multiple, width, height int) {
	c.applying = true
	defer func() { c.applying = false }()
	opts := sizeOptions(native, multiple)
	for _, s := range []struct {
		sel *widget.Select
		v   int
	}{{c.width, width}, {c.height, height}} {
		sides := slices.Clone(opts)
		if !slices.Contains(sides, s.v) {
			sides = append(sides, s.v)
			slices.Sort(sides)
		}
		labels := make([]string, len(sides))
		for i, v := range sides {
			labels[i] = strconv.Itoa(v)
		}
		s.sel.SetOptions(labels)
		s.sel.SetSelected(strconv.Itoa(s.v))
	}
}

// composition reads the widgets; an invalid field is an error naming it.
func (c *Composer) composition() (export.Composition, error) {
	seed, err := parseSeed(c.seed.Text)
	if err != nil {
		return export.Composition{}, fmt.Errorf("seed: %w", err)
	}
	steps, err := parseSteps(c.steps.Text)
	if err != nil {
		return export.Composition{}, fmt.Errorf("steps: %w", err)
	}
	sampler := ""
	for _, n := range app.SamplerNames() {
		if app.SamplerLabel(n) == c.sampler.Selected {
			sampler = n
		}
	}
	if sampler == "" {
		return export.Composition{}, errors.New("choose a sampler")
	}
	w, errW := strconv.Atoi(c.width.Selected)
	h, errH := strconv.Atoi(c.height.Selected)
	if errW != nil || errH != nil {
		return export.Composition{}, errors.New("choose an image size")
	}
	return export.Composition{
		Prompt: strings.TrimSpace(c.prompt.Text), Negative: strings.TrimSpace(c.negative.Text),
		Seed: seed, Steps: steps, CFG: c.cfg.Value, Sampler: sampler, Width: w, Height: h,
		Concepts: c.concepts.uses(),
	}, nil
}

// insertConcept adds <name> to the prompt (at its end, after a space) and
// gives the prompt the focus; the change schedules a preview.
func (c *Composer) insertConcept(name string) {
	text := c.prompt.Text
	if text != "" && !strings.HasSuffix(text, " ") {
		text += " "
	}
	c.prompt.SetText(text + app.Placeholder(name))
	c.prompt.CursorRow = strings.Count(c.prompt.Text, "\n")
	c.prompt.CursorColumn = len([]rune(c.prompt.Text[strings.LastIndex(c.prompt.Text, "\n")+1:]))
	c.prompt.Refresh()
}

func parseSeed(s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, errors.New("a whole number from 0")
	}
	return v, nil
}

func parseSteps(s string) (int, error) {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 1 || v > 150 {
		return 0, errors.New("a whole number from 1 to 150")
	}
	return v, nil
}
