package safetensors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Bounds of the header walk; a real entry is an object of three keys with a
// shape of at most a few dimensions, nested three deep.
const (
	maxHeaderDepth   = 4    // the header, an entry, its shape
	maxEntryTokens   = 1024 // JSON tokens of one tensor entry
	metadataKey      = "__metadata__"
	headerObjectSize = 3 // keys of an entry, to size its key set
)

// checkHeader walks the header's JSON tokens before anything is built per
// tensor: it refuses a header with more than MaxTensors entries, oversized
// or deeply nested entries, and duplicate keys at any level (encoding/json
// would keep the last of them, other readers the first or neither, so a
// file with duplicates means different tensors to different programs).
func checkHeader(hdr []byte) error {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	type level struct {
		object  bool
		wantKey bool
		keys    map[string]bool
	}
	var stack []*level
	tensors, entryTokens := 0, 0
	entry := "" // the top-level key whose value is being walked
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("safetensors: header is not a JSON object: %v: %w", err, ErrFormat)
		}
		if len(stack) > 1 && entry != metadataKey {
			if entryTokens++; entryTokens > maxEntryTokens {
				return fmt.Errorf("safetensors: tensor %q: header entry of more than %d JSON values (header corrupt): %w", clipName(entry), maxEntryTokens, ErrFormat)
			}
		}
		top := (*level)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.wantKey {
			if tok != json.Delim('}') {
				key, _ := tok.(string)
				if top.keys[key] {
					if len(stack) == 1 {
						return fmt.Errorf("safetensors: tensor %q appears twice in the header (readers disagree on which one counts): %w", clipName(key), ErrFormat)
					}
					return fmt.Errorf("safetensors: key %q appears twice in the header entry %q (readers disagree on which one counts): %w", clipName(key), clipName(entry), ErrFormat)
				}
				top.keys[key], top.wantKey = true, false
				if len(stack) == 1 {
					entry, entryTokens = key, 0
					if key != metadataKey {
						if tensors++; tensors > MaxTensors {
							return fmt.Errorf("safetensors: the header lists more than %d tensors (Stable Diffusion 1.x has about 1,200): %w", MaxTensors, ErrUnsupported)
						}
					}
				}
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == maxHeaderDepth {
				return fmt.Errorf("safetensors: tensor %q: header nests deeper than %d levels (header corrupt): %w", clipName(entry), maxHeaderDepth, ErrFormat)
			}
			l := &level{object: tok == json.Delim('{')}
			if l.object {
				l.wantKey, l.keys = true, make(map[string]bool, headerObjectSize)
			}
			stack = append(stack, l)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return nil // the rest is checked when the header is decoded
			}
		}
		if top := stack[len(stack)-1]; top.object {
			top.wantKey = true // a value ended
		}
	}
}

// clipName shortens a name quoted from a hostile header.
func clipName(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
