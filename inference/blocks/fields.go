package blocks

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Fields is one JSON object of a config file, read field by field so that a
// Config can start from its SD1.5 default and take only what the file says.
// Setters leave the destination untouched when the key is absent and record
// the first type error, reported by Err.
type Fields struct {
	m   map[string]json.RawMessage
	err error
}

// ParseFields decodes a JSON object.
func ParseFields(data []byte) (*Fields, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return &Fields{m: m}, nil
}

// Has reports whether key is present and not null.
func (f *Fields) Has(key string) bool {
	r, ok := f.m[key]
	return ok && string(r) != "null"
}

// Object returns the nested object under key, or nil if absent or not an
// object.
func (f *Fields) Object(key string) *Fields {
	if !f.Has(key) {
		return nil
	}
	sub, err := ParseFields(f.m[key])
	if err != nil {
		return nil
	}
	return sub
}

// Get decodes key into dst (any JSON-decodable pointer) if present; it
// reports whether the key was present and decoded.
func (f *Fields) Get(key string, dst any) bool {
	if !f.Has(key) {
		return false
	}
	if err := json.Unmarshal(f.m[key], dst); err != nil {
		if f.err == nil {
			f.err = fieldError(key, f.m[key], dst, err)
		}
		return false
	}
	return true
}

// fieldError says which field has which wrong type: `field
// "block_out_channels" is a string, want a list of integers`.
func fieldError(key string, raw json.RawMessage, dst any, err error) error {
	var want string
	switch dst.(type) {
	case *int:
		want = "an integer"
	case *[]int:
		want = "a list of integers"
	case *float32, *float64:
		want = "a number"
	case *bool:
		want = "true or false"
	case *string:
		want = "a string"
	case *[]string:
		want = "a list of strings"
	default:
		return fmt.Errorf("field %q: %w", key, err)
	}
	got := "a number"
	switch s := strings.TrimSpace(string(raw)); {
	case strings.HasPrefix(s, `"`):
		got = "a string"
	case strings.HasPrefix(s, "["):
		got = "a list"
		if te, ok := err.(*json.UnmarshalTypeError); ok && strings.HasPrefix(want, "a list") {
			kind, _, _ := strings.Cut(te.Value, " ") // "number 2.5" -> "number"
			got = "a list with a " + kind + " element"
		}
	case strings.HasPrefix(s, "{"):
		got = "an object"
	case s == "true" || s == "false":
		got = "a boolean"
	}
	if len(raw) <= 40 {
		return fmt.Errorf("field %q is %s (%s), want %s", key, got, raw, want)
	}
	return fmt.Errorf("field %q is %s, want %s", key, got, want)
}

// Int sets *dst from key.
func (f *Fields) Int(key string, dst *int) bool { return f.Get(key, dst) }

// Ints sets *dst from key.
func (f *Fields) Ints(key string, dst *[]int) bool { return f.Get(key, dst) }

// Float32 sets *dst from key.
func (f *Fields) Float32(key string, dst *float32) bool { return f.Get(key, dst) }

// Bool sets *dst from key.
func (f *Fields) Bool(key string, dst *bool) bool { return f.Get(key, dst) }

// String sets *dst from key.
func (f *Fields) String(key string, dst *string) bool { return f.Get(key, dst) }

// IntOrInts reads a key that diffusers writes either as one int or as one
// int per block (attention_head_dim, transformer_layers_per_block).
func (f *Fields) IntOrInts(key string) ([]int, bool) {
	if !f.Has(key) {
		return nil, false
	}
	var one int
	if err := json.Unmarshal(f.m[key], &one); err == nil {
		return []int{one}, true
	}
	var many []int
	if f.Get(key, &many) {
		return many, true
	}
	return nil, false
}

// Err returns the first decoding error.
func (f *Fields) Err() error { return f.err }

// Unwrap returns the object holding a model's hyper-parameters: the golden
// files wrap them as {"component": ..., "config": {...}} and CompVis YAML
// (converted to JSON) as {"target": ..., "params": {...}}; other objects
// are returned unchanged.
func (f *Fields) Unwrap() *Fields {
	for _, k := range []string{"config", "params"} {
		if sub := f.Object(k); sub != nil {
			return sub.Unwrap()
		}
	}
	return f
}

// ParseShapeList reads a tensor listing of lines "name DTYPE [d0, d1, ...]"
// (the format of shared/sd15_tensors.txt; '#' lines are comments) and
// returns name -> shape for the names starting with prefix, prefix removed,
// as weights.Shapes does for a real Source.
func ParseShapeList(text, prefix string) (map[string][]int, error) {
	out := map[string][]int{}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		i := strings.Index(rest, "[")
		if !ok || i < 0 {
			return nil, fmt.Errorf("shape list line %d: %q", n+1, line)
		}
		var shape []int
		if err := json.Unmarshal([]byte(rest[i:]), &shape); err != nil {
			return nil, fmt.Errorf("shape list line %d: %w", n+1, err)
		}
		if strings.HasPrefix(name, prefix) {
			out[strings.TrimPrefix(name, prefix)] = shape
		}
	}
	return out, nil
}
