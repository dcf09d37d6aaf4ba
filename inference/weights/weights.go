// Package weights is the small interface model packages load tensors
// through, so they do not care whether names come from a safetensors file,
// a .ckpt pickle, a diffusers folder or a test. Sources that can hand out
// float16 tensors unconverted implement HalfSource; half.go also holds the
// float16 <-> float32 conversions.
package weights

import (
	"fmt"
	"sort"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// Source gives named tensors. Names use the CompVis SD1.x checkpoint keys.
type Source interface {
	// Names lists every tensor name, sorted.
	Names() []string
	// Shape returns a tensor's shape without reading its data.
	Shape(name string) ([]int, bool)
	// Float32 reads a tensor converted to float32, with its shape.
	Float32(name string) ([]float32, []int, error)
}

// Safetensors adapts a safetensors file to Source (a HalfSource).
func Safetensors(f *safetensors.File) Source { return stFile{f} }

type stFile struct{ f *safetensors.File }

func (s stFile) Names() []string { return s.f.Names() }
func (s stFile) Shape(name string) ([]int, bool) {
	i, ok := s.f.Info(name)
	return i.Shape, ok
}
func (s stFile) Float32(name string) ([]float32, []int, error) { return s.f.Float32(name) }
func (s stFile) Half(name string) ([]uint16, []int, error)     { return s.f.Half(name) }
func (s stFile) DType(name string) string {
	i, ok := s.f.Info(name)
	if !ok {
		return ""
	}
	return i.DType
}

// Merge presents several sources as one; an earlier source wins on a
// duplicate name.
func Merge(srcs ...Source) Source { return merged(srcs) }

type merged []Source

func (m merged) Names() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range m {
		for _, n := range s.Names() {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (m merged) Shape(name string) ([]int, bool) {
	for _, s := range m {
		if sh, ok := s.Shape(name); ok {
			return sh, true
		}
	}
	return nil, false
}

func (m merged) Float32(name string) ([]float32, []int, error) {
	for _, s := range m {
		if _, ok := s.Shape(name); ok {
			return s.Float32(name)
		}
	}
	return nil, nil, fmt.Errorf("weights: no tensor %q", name)
}

func (m merged) DType(name string) string {
	for _, s := range m {
		if _, ok := s.Shape(name); ok {
			return DType(s, name)
		}
	}
	return ""
}

func (m merged) Half(name string) ([]uint16, []int, error) {
	for _, s := range m {
		if _, ok := s.Shape(name); ok {
			if h, ok := s.(HalfSource); ok {
				return h.Half(name)
			}
			return nil, nil, fmt.Errorf("weights: tensor %q is not stored as F16", name)
		}
	}
	return nil, nil, fmt.Errorf("weights: no tensor %q", name)
}

// Shapes returns name -> shape for every tensor whose name starts with
// prefix, with the prefix removed, for Config detection.
func Shapes(src Source, prefix string) map[string][]int {
	out := map[string][]int{}
	for _, n := range src.Names() {
		if strings.HasPrefix(n, prefix) {
			if sh, ok := src.Shape(n); ok {
				out[strings.TrimPrefix(n, prefix)] = sh
			}
		}
	}
	return out
}

// Map is an in-memory Source (and HalfSource), for tests and generated
// models.
type Map map[string]Tensor

// Tensor is one in-memory tensor: float32 Data, or float16 Half (raw IEEE
// binary16) when Half is set.
type Tensor struct {
	Data  []float32
	Half  []uint16
	Shape []int
}

// Names lists the names, sorted.
func (m Map) Names() []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Shape returns a tensor's shape.
func (m Map) Shape(name string) ([]int, bool) {
	t, ok := m[name]
	return t.Shape, ok
}

// Float32 returns a tensor: float32 data not copied, half data converted.
func (m Map) Float32(name string) ([]float32, []int, error) {
	t, ok := m[name]
	if !ok {
		return nil, nil, fmt.Errorf("weights: no tensor %q", name)
	}
	if t.Half != nil {
		d := make([]float32, len(t.Half))
		HalfToFloat32s(d, t.Half)
		return d, t.Shape, nil
	}
	return t.Data, t.Shape, nil
}

// DType is "F16" for a tensor holding Half data, "F32" for the others.
func (m Map) DType(name string) string {
	t, ok := m[name]
	switch {
	case !ok:
		return ""
	case t.Half != nil:
		return "F16"
	}
	return "F32"
}

// Half returns a float16 tensor (not copied); a float32 one is an error.
func (m Map) Half(name string) ([]uint16, []int, error) {
	t, ok := m[name]
	switch {
	case !ok:
		return nil, nil, fmt.Errorf("weights: no tensor %q", name)
	case t.Half == nil:
		return nil, nil, fmt.Errorf("weights: tensor %q is not stored as F16", name)
	}
	return t.Half, t.Shape, nil
}

var (
	_ HalfSource = Map{}
	_ HalfSource = stFile{}
	_ HalfSource = merged{}
)
