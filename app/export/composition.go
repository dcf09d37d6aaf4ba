package export

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// CompositionVersion is the version of the Composition JSON this package
// writes; a file with a newer version is refused with a hint to update.
const CompositionVersion = 1

// Composition is everything needed to make an image again: prompt,
// sampling settings, size, the model and (once concepts exist) the concepts
// with their gates. It is what history keeps and what an exported PNG
// carries as JSON.
type Composition struct {
	Version  int     `json:"version"`
	Prompt   string  `json:"prompt"`
	Negative string  `json:"negative_prompt,omitempty"`
	Seed     uint64  `json:"seed"`
	Steps    int     `json:"steps"`
	CFG      float64 `json:"cfg_scale"`
	// Sampler is a pipeline sampler name ("dpmpp_2m_karras").
	Sampler       string `json:"sampler"`
	Width, Height int    `json:"-"`
	ClipSkip      int    `json:"clip_skip,omitempty"`
	// Model is the model's display name; ModelHash the web UI's short
	// SHA-256 of its file ("" for a diffusers folder).
	Model     string `json:"model,omitempty"`
	ModelHash string `json:"model_hash,omitempty"`
	// Concepts are the concepts used in the prompt with their gates.
	Concepts []ConceptUse `json:"concepts,omitempty"`
	// ConceptMulti is how several concepts combine: "sum" (or "") or
	// "exact".
	ConceptMulti string `json:"concept_multi,omitempty"`
}

// ConceptUse is one concept of a composition and how it is applied.
type ConceptUse struct {
	Name string `json:"name"`
	// Hash identifies the concept file.
	Hash string `json:"hash,omitempty"`
	// Beta and Tau are the concept's gate parameters (likeness ↔ prompt
	// balance, and the gate's temperature).
	Beta float64 `json:"beta"`
	Tau  float64 `json:"tau"`
	// Locking is the key-locking mode.
	Locking string `json:"locking,omitempty"`
}

// MarshalJSON writes c with its size as [width, height].
func (c Composition) MarshalJSON() ([]byte, error) {
	type plain Composition // without this method
	return json.Marshal(struct {
		plain
		Size [2]int `json:"size"`
	}{plain(c), [2]int{c.Width, c.Height}})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Composition) UnmarshalJSON(data []byte) error {
	type plain Composition
	var v struct {
		plain
		Size [2]int `json:"size"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*c = Composition(v.plain)
	c.Width, c.Height = v.Size[0], v.Size[1]
	return nil
}

// Validate explains what is wrong with c as a request to make an image.
func (c Composition) Validate() error {
	switch {
	case c.Version > CompositionVersion:
		return fmt.Errorf("export: settings version %d is newer than this app understands (%d); update Perfusion Studio", c.Version, CompositionVersion)
	case c.Steps < 1 || c.Steps > 1000:
		return fmt.Errorf("export: %d steps: want 1 to 1000", c.Steps)
	case c.Width <= 0 || c.Height <= 0:
		return fmt.Errorf("export: size %dx%d: both sides must be positive", c.Width, c.Height)
	}
	return nil
}

// Settings returns c in the web UI's terms, for the "parameters" chunk;
// samplerLabel maps a sampler name to its display name (nil keeps it).
func (c Composition) Settings(samplerLabel func(string) string) Settings {
	label := c.Sampler
	if samplerLabel != nil {
		label = samplerLabel(c.Sampler)
	}
	s := Settings{
		Prompt: c.Prompt, NegativePrompt: c.Negative, Steps: c.Steps, Sampler: label,
		CFGScale: c.CFG, Seed: c.Seed, Width: c.Width, Height: c.Height,
		ModelName: c.Model, ModelHash: c.ModelHash,
	}
	if c.ClipSkip > 1 {
		s.Extra = append(s.Extra, [2]string{"Clip skip", strconv.Itoa(c.ClipSkip)})
	}
	s.Extra = append(s.Extra, ConceptParameters(c.Concepts, c.ConceptMulti)...)
	return s
}

// ConceptParameters are the "parameters" entries that record concepts:
// Concepts: "name: beta B tau T locking L hash H, ..." (quoted, as the web
// UI quotes values with commas) and, for several, Concept multi. None for
// no concepts.
func ConceptParameters(uses []ConceptUse, multi string) [][2]string {
	if len(uses) == 0 {
		return nil
	}
	parts := make([]string, len(uses))
	for i, u := range uses {
		p := fmt.Sprintf("%s: beta %s tau %s", u.Name, trimFloat(u.Beta), trimFloat(u.Tau))
		if u.Locking != "" {
			p += " locking " + u.Locking
		}
		if u.Hash != "" {
			p += " hash " + u.Hash
		}
		parts[i] = p
	}
	out := [][2]string{{"Concepts", strconv.Quote(strings.Join(parts, ", "))}}
	if len(uses) > 1 {
		if multi == "" {
			multi = "sum"
		}
		out = append(out, [2]string{"Concept multi", multi})
	}
	return out
}
