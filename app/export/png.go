// Package export writes finished images: PNG files carrying their generation
// settings in a "parameters" text chunk (the format the widespread
// AUTOMATIC1111 web UI writes, so other tools can read the settings back),
// written atomically so a crash or a full disk never leaves half a file.
package export

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"hash/crc32"
	"image"
	"image/png"
	"strings"
	"unicode/utf8"
)

// ParametersKey is the text-chunk keyword the web UI uses.
const ParametersKey = "parameters"

// Settings are the generation settings recorded in a PNG.
type Settings struct {
	Prompt         string
	NegativePrompt string
	Steps          int
	Sampler        string // display name, e.g. "DPM++ 2M Karras"
	CFGScale       float64
	Seed           uint64
	Width, Height  int
	ModelName      string
	ModelHash      string // short hash, optional
	Extra          [][2]string
}

// Parameters formats s the way the web UI does: the prompt, an optional
// "Negative prompt:" line, then one line of "Key: value" pairs.
func (s Settings) Parameters() string {
	var b strings.Builder
	b.WriteString(s.Prompt)
	if s.NegativePrompt != "" {
		b.WriteString("\nNegative prompt: ")
		b.WriteString(s.NegativePrompt)
	}
	pairs := []string{
		fmt.Sprintf("Steps: %d", s.Steps),
		"Sampler: " + s.Sampler,
		"CFG scale: " + trimFloat(s.CFGScale),
		fmt.Sprintf("Seed: %d", s.Seed),
		fmt.Sprintf("Size: %dx%d", s.Width, s.Height),
	}
	if s.ModelHash != "" {
		pairs = append(pairs, "Model hash: "+s.ModelHash)
	}
	if s.ModelName != "" {
		pairs = append(pairs, "Model: "+s.ModelName)
	}
	for _, kv := range s.Extra {
		pairs = append(pairs, kv[0]+": "+kv[1])
	}
	b.WriteString("\n")
	b.WriteString(strings.Join(pairs, ", "))
	return b.String()
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.4f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// EncodePNG encodes img as PNG with a text chunk key=text placed right after
// IHDR. Latin-1 text goes in a tEXt chunk, anything else in an uncompressed
// UTF-8 iTXt chunk.
func EncodePNG(img image.Image, key, text string) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("export: encode png: %w", err)
	}
	if key == "" {
		return buf.Bytes(), nil
	}
	if len(key) > 79 || !utf8.ValidString(text) {
		return nil, fmt.Errorf("export: bad text chunk key %q or invalid UTF-8 text", key)
	}
	raw := buf.Bytes()
	// 8-byte signature, then IHDR: length(4) type(4) data(13) crc(4).
	const ihdrEnd = 8 + 4 + 4 + 13 + 4
	if len(raw) < ihdrEnd || string(raw[12:16]) != "IHDR" {
		return nil, fmt.Errorf("export: unexpected png layout")
	}
	var chunk []byte
	if latin1, ok := toLatin1(text); ok {
		chunk = makeChunk("tEXt", append(append([]byte(key), 0), latin1...))
	} else {
		// keyword, 0, compression flag 0, method 0, empty language, 0, empty translated keyword, 0, text
		data := append([]byte(key), 0, 0, 0, 0, 0)
		chunk = makeChunk("iTXt", append(data, text...))
	}
	out := make([]byte, 0, len(raw)+len(chunk))
	out = append(out, raw[:ihdrEnd]...)
	out = append(out, chunk...)
	out = append(out, raw[ihdrEnd:]...)
	return out, nil
}

func toLatin1(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff || r == 0 {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

func makeChunk(typ string, data []byte) []byte {
	c := make([]byte, 8+len(data)+4)
	binary.BigEndian.PutUint32(c[0:4], uint32(len(data)))
	copy(c[4:8], typ)
	copy(c[8:], data)
	binary.BigEndian.PutUint32(c[8+len(data):], crc32.ChecksumIEEE(c[4:8+len(data)]))
	return c
}

// TextChunks returns the tEXt and uncompressed iTXt chunks of a PNG file.
func TextChunks(data []byte) (map[string]string, error) {
	if len(data) < 8 || string(data[1:4]) != "PNG" {
		return nil, fmt.Errorf("export: not a png")
	}
	out := map[string]string{}
	for p := 8; p+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[p:]))
		if n < 0 || p+12+n > len(data) {
			return nil, fmt.Errorf("export: truncated png chunk")
		}
		typ, body := string(data[p+4:p+8]), data[p+8:p+8+n]
		switch typ {
		case "tEXt":
			if k, v, ok := bytes.Cut(body, []byte{0}); ok {
				r := make([]rune, len(v))
				for i, b := range v {
					r[i] = rune(b)
				}
				out[string(k)] = string(r)
			}
		case "iTXt":
			if k, rest, ok := bytes.Cut(body, []byte{0}); ok && len(rest) >= 2 && rest[0] == 0 {
				rest = rest[2:]
				if _, rest, ok = bytes.Cut(rest, []byte{0}); ok {
					if _, v, ok := bytes.Cut(rest, []byte{0}); ok {
						out[string(k)] = string(v)
					}
				}
			}
		}
		p += 12 + n
	}
	return out, nil
}

// SavePNG writes img with its settings to path atomically.
func SavePNG(path string, img image.Image, s Settings) error {
	data, err := EncodePNG(img, ParametersKey, s.Parameters())
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data)
}
