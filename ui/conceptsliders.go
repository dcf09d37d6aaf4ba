package ui

import (
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/app/export"
)

// Key-locking choices as the composer shows them.
const (
	lockLocal  = "Local (keys from the prompt)"
	lockGlobal = "Global (keys from the superordinate word)"
)

// conceptRow is one concept's gate controls: β (the likeness ↔ prompt
// balance) and, under "Advanced", τ.
type conceptRow struct {
	use  export.ConceptUse
	beta *widget.Slider
	tau  *widget.Slider
	box  fyne.CanvasObject
}

// conceptSliders are the composer's controls for the concepts in the
// prompt, and the key-locking mode they share.
type conceptSliders struct {
	changed func()
	sweep   func(name string) // the row's "Sweep β…" button; nil hides it
	column  *fyne.Container
	empty   *widget.Label
	lock    *widget.Select
	rows    []*conceptRow
}

func (s *conceptSliders) build(empty *widget.Label) *fyne.Container {
	s.empty = empty
	s.lock = widget.NewSelect([]string{lockLocal, lockGlobal}, nil)
	s.lock.SetSelected(lockLocal)
	s.lock.OnChanged = func(string) { s.changed() }
	s.column = container.NewVBox(empty)
	return s.column
}

// names lists the rows' concepts.
func (s *conceptSliders) names() []string {
	out := make([]string, len(s.rows))
	for i, r := range s.rows {
		out[i] = strings.ToLower(r.use.Name)
	}
	return out
}

// set shows uses (rebuilding the rows when the concepts changed) without
// reporting changes.
func (s *conceptSliders) set(uses []export.ConceptUse) {
	want := make([]string, len(uses))
	for i, u := range uses {
		want[i] = strings.ToLower(u.Name)
	}
	lock := lockLocal
	if len(uses) > 0 && uses[0].Locking == "global" {
		lock = lockGlobal
	}
	if s.lock.Selected != lock {
		s.lock.Selected = lock
		s.lock.Refresh()
	}
	if slices.Equal(want, s.names()) {
		for i, r := range s.rows {
			r.use = uses[i]
			r.beta.Value, r.tau.Value = uses[i].Beta, uses[i].Tau
			r.beta.Refresh()
			r.tau.Refresh()
		}
		return
	}
	s.rows = nil
	objs := []fyne.CanvasObject{}
	for _, u := range uses {
		r := s.newRow(u)
		s.rows = append(s.rows, r)
		objs = append(objs, r.box)
	}
	if len(uses) == 0 {
		objs = append(objs, s.empty)
	} else {
		objs = append(objs, widget.NewForm(widget.NewFormItem("Key locking", s.lock)))
	}
	s.column.Objects = objs
	s.column.Refresh()
}

func (s *conceptSliders) newRow(u export.ConceptUse) *conceptRow {
	r := &conceptRow{use: u}
	betaValue := widget.NewLabel(fmtGate(u.Beta))
	r.beta = widget.NewSlider(app.MinBeta, app.MaxBeta)
	r.beta.Step = 0.01
	r.beta.Value = u.Beta
	r.beta.OnChanged = func(v float64) {
		betaValue.SetText(fmtGate(v))
		s.changed()
	}
	tauValue := widget.NewLabel(fmtGate(u.Tau))
	r.tau = widget.NewSlider(app.MinTau, app.MaxTau)
	r.tau.Step = 0.01
	r.tau.Value = u.Tau
	r.tau.OnChanged = func(v float64) {
		tauValue.SetText(fmtGate(v))
		s.changed()
	}
	title := widget.NewLabelWithStyle(app.Placeholder(u.Name), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	ends := container.NewBorder(nil, nil, widget.NewLabel("Likeness"), widget.NewLabel("Prompt"), betaValue)
	advanced := widget.NewAccordion(widget.NewAccordionItem("Advanced",
		widget.NewForm(widget.NewFormItem("Gate sharpness τ", container.NewBorder(nil, nil, nil, tauValue, r.tau)))))
	head := fyne.CanvasObject(title)
	if s.sweep != nil {
		head = container.NewBorder(nil, nil, nil, widget.NewButton("Sweep β…", func() { s.sweep(u.Name) }), title)
	}
	r.box = container.NewVBox(head, r.beta, ends, advanced)
	return r
}

// setBeta moves the β slider of concept name (reporting the change).
func (s *conceptSliders) setBeta(name string, beta float64) {
	for _, r := range s.rows {
		if strings.EqualFold(r.use.Name, name) {
			r.beta.SetValue(beta)
		}
	}
}

// uses reads the rows.
func (s *conceptSliders) uses() []export.ConceptUse {
	lock := "local"
	if s.lock.Selected == lockGlobal {
		lock = "global"
	}
	out := make([]export.ConceptUse, len(s.rows))
	for i, r := range s.rows {
		u := r.use
		u.Beta, u.Tau, u.Locking = r.beta.Value, r.tau.Value, lock
		out[i] = u
	}
	return out
}

func fmtGate(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
