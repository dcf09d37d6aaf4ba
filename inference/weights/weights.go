// Package weights is the small interface model packages load tensors
// through, so they do not care whether names come from a safetensors file,
// a .ckpt pickle, a diffusers folder or a test.
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

// Safetensors adapts a safetensors file to Source.
func Safetensors(f *safetensors.File) Source { return stFile{f} }

type stFile struct{ f *safetensors.File }

func (s stFile) Names() []string { return s.f.Names() }
func (s stFile) Shape(name string) ([]int, bool) {
	i, ok := s.f.Info(name)
	return i.Shape, ok
}
func (s stFile) Float32(name string) ([]float32, []int, error) { return s.f.Float32(name) }

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

// Map is an in-memory Source, for tests and generated models.
type Map map[string]Tensor

// Tensor is one in-memory tensor.
type Tensor struct {
	Data  []float32
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

// Float32 returns a tensor (not copied).
func (m Map) Float32(name string) ([]float32, []int, error) {
	t, ok := m[name]
	if !ok {
		return nil, nil, fmt.Errorf("weights: no tensor %q", name)
	}
	return t.Data, t.Shape, nil
}
