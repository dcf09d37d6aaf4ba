package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"image"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// CompositionKey is the iTXt keyword under which the full settings are
// stored as JSON.
const CompositionKey = "perfusion"

// ErrNoSettings is returned for a PNG that carries no generation settings.
var ErrNoSettings = errors.New("export: this PNG carries no generation settings")

// EncodeComposition encodes img as PNG with two chunks: the web UI's
// "parameters" text and an iTXt chunk holding c as JSON. samplerLabel maps
// a sampler name to its display name for the parameters (nil keeps it).
func EncodeComposition(img image.Image, c Composition, samplerLabel func(string) string) ([]byte, error) {
	c.Version = CompositionVersion
	js, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("export: settings: %w", err)
	}
	raw, err := EncodePNG(img, ParametersKey, c.Settings(samplerLabel).Parameters())
	if err != nil {
		return nil, err
	}
	// keyword, 0, compression flag 0, method 0, empty language, 0, empty
	// translated keyword, 0, UTF-8 text. Always iTXt: JSON is UTF-8.
	data := append([]byte(CompositionKey), 0, 0, 0, 0, 0)
	chunk := makeChunk("iTXt", append(data, js...))
	const ihdrEnd = 8 + 4 + 4 + 13 + 4
	out := make([]byte, 0, len(raw)+len(chunk))
	out = append(out, raw[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, raw[ihdrEnd:]...), nil
}

// SaveComposition writes img with c's settings to path atomically.
func SaveComposition(path string, img image.Image, c Composition, samplerLabel func(string) string) error {
	data, err := EncodeComposition(img, c, samplerLabel)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data)
}

// ReadComposition returns the settings a PNG carries: the iTXt JSON that
// EncodeComposition writes or, failing that, what the web UI's
// "parameters" text says (samplerName maps its display name back, nil
// keeps it). A PNG with neither gives ErrNoSettings.
func ReadComposition(data []byte, samplerName func(string) (string, error)) (Composition, error) {
	chunks, err := TextChunks(data)
	if err != nil {
		return Composition{}, err
	}
	if js, ok := chunks[CompositionKey]; ok {
		var c Composition
		if err := json.Unmarshal([]byte(js), &c); err != nil {
			return Composition{}, fmt.Errorf("export: the PNG's settings are damaged: %w", err)
		}
		if c.Version > CompositionVersion {
			return Composition{}, c.Validate()
		}
		return c, nil
	}
	if text, ok := chunks[ParametersKey]; ok {
		return ParseParameters(text, samplerName)
	}
	return Composition{}, ErrNoSettings
}

// ReadCompositionFile reads the settings of the PNG file at path.
func ReadCompositionFile(path string, samplerName func(string) (string, error)) (Composition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Composition{}, fmt.Errorf("export: %w", err)
	}
	if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		return Composition{}, fmt.Errorf("export: %s is not a PNG image", path)
	}
	c, err := ReadComposition(data, samplerName)
	if err != nil {
		return Composition{}, fmt.Errorf("%w (%s)", err, path)
	}
	return c, nil
}

// paramRe matches one "Key: value" pair of the parameters' last line; a
// value may be a JSON-quoted string holding commas (as the web UI writes).
var paramRe = regexp.MustCompile(`\s*([\w ]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)`)

// ParseParameters reads the web UI's "parameters" text back into a
// Composition (the inverse of Settings.Parameters, for what a Composition
// holds). samplerName maps a display name to a sampler name (nil keeps it).
func ParseParameters(text string, samplerName func(string) (string, error)) (Composition, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "Steps:") {
		return Composition{}, fmt.Errorf("export: parameters without a settings line: %w", ErrNoSettings)
	}
	var c Composition
	var prompt, negative []string
	inNegative := false
	for _, l := range lines[:len(lines)-1] {
		if rest, ok := strings.CutPrefix(l, "Negative prompt: "); ok && !inNegative {
			inNegative = true
			l = rest
		}
		if inNegative {
			negative = append(negative, l)
		} else {
			prompt = append(prompt, l)
		}
	}
	c.Prompt, c.Negative = strings.Join(prompt, "\n"), strings.Join(negative, "\n")
	for _, m := range paramRe.FindAllStringSubmatch(last, -1) {
		key, val := strings.TrimSpace(m[1]), strings.TrimSpace(m[2])
		if u, err := strconv.Unquote(val); err == nil && strings.HasPrefix(val, `"`) {
			val = u
		}
		var err error
		switch key {
		case "Steps":
			c.Steps, err = strconv.Atoi(val)
		case "Sampler":
			c.Sampler = val
			if samplerName != nil {
				c.Sampler, err = samplerName(val)
			}
		case "CFG scale":
			c.CFG, err = strconv.ParseFloat(val, 64)
		case "Seed":
			c.Seed, err = strconv.ParseUint(val, 10, 64)
		case "Size":
			w, h, ok := strings.Cut(val, "x")
			if c.Width, err = strconv.Atoi(w); err == nil && ok {
				c.Height, err = strconv.Atoi(h)
			}
		case "Model":
			c.Model = val
		case "Model hash":
			c.ModelHash = val
		case "Clip skip":
			c.ClipSkip, err = strconv.Atoi(val)
		}
		if err != nil {
			return Composition{}, fmt.Errorf("export: parameters %s %q: %v", key, val, err)
		}
	}
	if err := c.Validate(); err != nil {
		return Composition{}, err
	}
	return c, nil
}
