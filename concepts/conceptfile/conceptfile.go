// Package conceptfile reads and writes Perfusion concept files (.concept):
// what one trained concept holds (PERFUSION.md §5) in about 110 KB for
// SD1.5: the concept's word embedding, its target input i*, the locked key
// target o*_K and the learned value target o*_V of every edited
// cross-attention layer, the superordinate word and its token id, the
// default gate (β, τ), the hashes of the base model and of the covariance
// C it was trained with, the training settings and a small PNG thumbnail.
//
// Layout (all integers little-endian):
//
//	magic    8 bytes  "PFCONCPT"
//	version  uint16   FormatVersion
//	flags    uint16   0
//	then three sections, each: length uint32, bytes, CRC-32C uint32 of the bytes
//	  1. header     JSON (Header): names, settings, tensor sizes
//	  2. thumbnail  PNG bytes (may be empty)
//	  3. tensors    float32: embedding [D], i* [D], then per layer o*_K [Out], o*_V [Out]
//
// The header and thumbnail come first so that a library can list concepts
// without reading their tensors (ReadHeader). A reader checks every length
// against fixed limits before allocating, every checksum, that the tensor
// sizes agree with the header and that every value is finite: a corrupt or
// truncated file is an error, never a panic.
package conceptfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// FormatVersion is the version this package writes and reads.
const FormatVersion = 1

// Magic starts every concept file.
const Magic = "PFCONCPT"

// Limits a reader enforces before allocating anything.
const (
	MaxHeaderBytes    = 64 << 10 // header JSON
	MaxThumbnailBytes = 8 << 10  // PNG thumbnail
	MaxTensorBytes    = 16 << 20 // all float32 tensors together
	MaxLayers         = 1024
	MaxNameRunes      = 64
)

// Default gate at inference (PERFUSION.md §7).
const (
	DefaultBeta = 0.7
	DefaultTau  = 0.15
)

// Concept is one trained Perfusion concept.
type Concept struct {
	Header
	Embedding   []float32 // the concept word's input embedding [D]
	TargetInput []float32 // i*, the target input (final EMA value) [D]
	Layers      []Layer   // edited cross-attention layers, in UNet order
	Thumbnail   []byte    // PNG, at most MaxThumbnailBytes; may be empty
}

// Layer holds the targets of one edited cross-attention layer.
type Layer struct {
	Name string    // the layer's checkpoint name, e.g. input_blocks.1.1.transformer_blocks.0.attn2
	OutK []float32 // o*_K = W_K ē_super, locked [Out]
	OutV []float32 // o*_V, learned [Out]
}

// Header is everything in a concept file but its tensors and thumbnail.
type Header struct {
	Name            string  `json:"name"`             // placeholder name, written <name> in prompts
	Superclass      string  `json:"superclass"`       // the superordinate word, one CLIP token
	SuperclassToken int     `json:"superclass_token"` // its token id
	Beta            float32 `json:"beta"`             // default gate bias
	Tau             float32 `json:"tau"`              // default gate temperature
	BaseModel       string  `json:"base_model"`       // hash of the base model it was trained on
	Covariance      string  `json:"covariance"`       // key of the covariance C it was trained with
	// Training holds the training settings as a JSON object (steps,
	// learning rates, resolution, ...), free-form; it may be empty.
	Training json.RawMessage `json:"training,omitempty"`
	Created  string          `json:"created,omitempty"` // RFC 3339 time of training, informative
	Dim      int             `json:"dim"`               // D, the text-encoding width
	// LayerInfo lists the layer names and output sizes, in file order.
	// Write fills it from Concept.Layers.
	LayerInfo []LayerInfo `json:"layers"`
}

// LayerInfo is one layer's name and output size in the header.
type LayerInfo struct {
	Name string `json:"name"`
	Out  int    `json:"out"`
}

// Floats is the number of float32 values the tensors of h take.
func (h *Header) Floats() int {
	n := 2 * h.Dim
	for _, l := range h.LayerInfo {
		n += 2 * l.Out
	}
	return n
}

// FormatError reports a file that is not a valid concept file.
type FormatError struct{ Msg string }

func (e *FormatError) Error() string { return "conceptfile: " + e.Msg }

func formatErr(format string, args ...any) error {
	return &FormatError{Msg: fmt.Sprintf(format, args...)}
}

// VersionError reports a concept file of another format version.
type VersionError struct{ Got int }

func (e *VersionError) Error() string {
	if e.Got > FormatVersion {
		return fmt.Sprintf("conceptfile: format version %d is newer than this build reads (version %d): update Perfusion Studio to open this concept", e.Got, FormatVersion)
	}
	return fmt.Sprintf("conceptfile: format version %d is older than this build reads (version %d): open and re-save it with the Perfusion Studio release that made it, or train the concept again", e.Got, FormatVersion)
}

// BaseMismatchError reports a concept trained for another base model or C.
type BaseMismatchError struct {
	Concept   string // the concept's name
	What      string // "base model" or "covariance"
	Want, Got string // the concept's hash, the loaded one
}

func (e *BaseMismatchError) Error() string {
	return fmt.Sprintf("concept %q was trained on %s %s, but the loaded one is %s: load the model it was trained on, or train the concept again on this one",
		e.Concept, e.What, e.Want, e.Got)
}

// ErrBaseMismatch matches every *BaseMismatchError with errors.Is.
var ErrBaseMismatch = errors.New("concept made for another base model")

// Is makes errors.Is(err, ErrBaseMismatch) true.
func (e *BaseMismatchError) Is(target error) bool { return target == ErrBaseMismatch }

// CheckBase returns a *BaseMismatchError when the concept was trained on
// another base model than the one whose hash is modelHash. Hashes compare
// case-insensitively; a concept without a base hash matches nothing.
func (h *Header) CheckBase(modelHash string) error {
	if h.BaseModel == "" || !equalFoldASCII(h.BaseModel, modelHash) {
		return &BaseMismatchError{Concept: h.Name, What: "base model", Want: orNone(h.BaseModel), Got: orNone(modelHash)}
	}
	return nil
}

// CheckCovariance is CheckBase for the key of the covariance C (concepts
// combined in one prompt must share C).
func (h *Header) CheckCovariance(key string) error {
	if h.Covariance == "" || !equalFoldASCII(h.Covariance, key) {
		return &BaseMismatchError{Concept: h.Name, What: "covariance", Want: orNone(h.Covariance), Got: orNone(key)}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ValidName reports whether name can name a concept: 1 to MaxNameRunes
// letters, digits, '-' or '_', starting with a letter or digit. Such a name
// is also a safe file name on every desktop system and is written <name>
// in prompts.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("conceptfile: empty concept name")
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("conceptfile: concept name %q is not valid UTF-8", name)
	}
	if n := utf8.RuneCountInString(name); n > MaxNameRunes {
		return fmt.Errorf("conceptfile: concept name has %d characters, at most %d", n, MaxNameRunes)
	}
	for i, r := range name {
		ok := unicode.IsLetter(r) || unicode.IsDigit(r) || (i > 0 && (r == '-' || r == '_'))
		if !ok {
			return fmt.Errorf("conceptfile: concept name %q: use letters, digits, '-' and '_' only, starting with a letter or digit", name)
		}
	}
	return nil
}

// validate checks that c is complete and consistent before it is written.
func (c *Concept) validate() error {
	if err := ValidName(c.Name); err != nil {
		return err
	}
	if c.Superclass == "" {
		return fmt.Errorf("conceptfile: concept %q has no superclass word", c.Name)
	}
	if c.SuperclassToken < 0 {
		return fmt.Errorf("conceptfile: superclass token id %d is negative", c.SuperclassToken)
	}
	if err := checkGate(c.Beta, c.Tau); err != nil {
		return err
	}
	d := len(c.Embedding)
	if d == 0 || len(c.TargetInput) != d {
		return fmt.Errorf("conceptfile: embedding has %d values and i* %d: both must have D > 0", d, len(c.TargetInput))
	}
	if len(c.Layers) == 0 || len(c.Layers) > MaxLayers {
		return fmt.Errorf("conceptfile: %d layers, want 1 to %d", len(c.Layers), MaxLayers)
	}
	for i, l := range c.Layers {
		if l.Name == "" {
			return fmt.Errorf("conceptfile: layer %d has no name", i)
		}
		if len(l.OutK) == 0 || len(l.OutK) != len(l.OutV) {
			return fmt.Errorf("conceptfile: layer %s: o*_K has %d values, o*_V %d: want the same size > 0", l.Name, len(l.OutK), len(l.OutV))
		}
	}
	if len(c.Training) > 0 && !json.Valid(c.Training) {
		return fmt.Errorf("conceptfile: training settings are not valid JSON")
	}
	if len(c.Thumbnail) > MaxThumbnailBytes {
		return fmt.Errorf("conceptfile: thumbnail of %d bytes, at most %d (see Thumbnail)", len(c.Thumbnail), MaxThumbnailBytes)
	}
	if len(c.Thumbnail) > 0 && string(c.Thumbnail[:min(8, len(c.Thumbnail))]) != pngSignature {
		return fmt.Errorf("conceptfile: thumbnail is not a PNG")
	}
	for _, t := range c.tensors() {
		if i := firstNonFinite(t.v); i >= 0 {
			return fmt.Errorf("conceptfile: %s[%d] is %v: only finite values can be saved", t.name, i, t.v[i])
		}
	}
	return nil
}

// checkGate validates a (β, τ) pair.
func checkGate(beta, tau float32) error {
	if math.IsNaN(float64(beta)) || math.IsInf(float64(beta), 0) {
		return fmt.Errorf("conceptfile: gate bias β = %v, want a finite number", beta)
	}
	if !(tau > 0) || math.IsInf(float64(tau), 0) {
		return fmt.Errorf("conceptfile: gate temperature τ = %v, want a finite number > 0", tau)
	}
	return nil
}

type namedTensor struct {
	name string
	v    []float32
}

// tensors lists c's tensors in file order.
func (c *Concept) tensors() []namedTensor {
	out := []namedTensor{{"embedding", c.Embedding}, {"i*", c.TargetInput}}
	for _, l := range c.Layers {
		out = append(out, namedTensor{l.Name + ".o*_K", l.OutK}, namedTensor{l.Name + ".o*_V", l.OutV})
	}
	return out
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return i
		}
	}
	return -1
}

const pngSignature = "\x89PNG\r\n\x1a\n"
