package checkpoint

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// spec is a tensor's dtype and shape.
type spec struct {
	dtype string
	shape []int
}

// fromShapes builds a checkpoint of named shapes without data (reads return
// zeros), for tests of names and shapes at real SD sizes.
func fromShapes(specs map[string]spec) *Checkpoint {
	c := &Checkpoint{path: "test.safetensors", kind: KindSafetensors, tensors: map[string]*entry{}}
	for n, s := range specs {
		s := s
		c.tensors[n] = &entry{dtype: s.dtype, shape: append([]int(nil), s.shape...), origin: n, read: func() ([]byte, error) {
			size := safetensors.DTypeSize(s.dtype)
			for _, d := range s.shape {
				size *= d
			}
			return make([]byte, size), nil
		}}
	}
	c.normalise(Options{})
	c.sortNames()
	return c
}

// sd15Specs reads shared/sd15_tensors.txt (all names and shapes of a real
// SD1.5 checkpoint). It skips when the file is absent, and fails under CI.
func sd15Specs(t *testing.T) map[string]spec {
	t.Helper()
	const p = "sd15_tensors.txt"
	out := map[string]spec{}
	for _, line := range strings.Split(golden.SD15Tensors(t), "\n") {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.SplitN(line, " ", 3)
		if len(fields) != 3 {
			t.Fatalf("%s: bad line %q", p, line)
		}
		var shape []int
		for _, d := range strings.Fields(strings.Trim(fields[2], "[]")) {
			n, err := strconv.Atoi(strings.TrimSuffix(d, ","))
			if err != nil {
				t.Fatalf("%s: bad shape in %q", p, line)
			}
			shape = append(shape, n)
		}
		out[fields[0]] = spec{fields[1], shape}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no tensors", p)
	}
	return out
}

// writeFile writes b to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// f32 encodes float32 values.
func f32(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// tensorsOf reads every tensor of a safetensors file as a ckpttest.Tensor.
func tensorsOf(t *testing.T, path string) []ckpttest.Tensor {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []ckpttest.Tensor
	for _, n := range f.Names() {
		b, info, err := f.Bytes(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ckpttest.Tensor{Name: n, DType: info.DType, Shape: info.Shape, Data: b})
	}
	return out
}

// mustOpen opens a checkpoint, closed at the end of the test.
func mustOpen(t *testing.T, path string, opt Options) *Checkpoint {
	t.Helper()
	c, err := OpenWith(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
