package stwriter

import (
	"bytes"
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

func TestWriteReadBack(t *testing.T) {
	f32 := []float32{1, -2.5, 3e-8, float32(math.Inf(1)), 0, 7}
	i64 := []int64{0, 1, 2, -3}
	entries := []Entry{
		{Name: "b.weight", DType: "F32", Shape: []int{2, 3}},
		{Name: "a.ids", DType: "I64", Shape: []int{1, 4}},
		{Name: "c.half", DType: "F16", Shape: []int{6}},
		{Name: "d.scalar", DType: "F32"},
	}
	fill := func(e Entry, dst []byte) error {
		switch e.Name {
		case "b.weight":
			PutFloat32(dst, f32)
		case "a.ids":
			for i, v := range i64 {
				binary.LittleEndian.PutUint64(dst[8*i:], uint64(v))
			}
		case "c.half":
			PutHalf(dst, f32)
		case "d.scalar":
			PutFloat32(dst, []float32{42})
		}
		return nil
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFile(path, entries, map[string]string{"format": "pt"}, fill); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := f.Names(), []string{"a.ids", "b.weight", "c.half", "d.scalar"}; !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	got, shape, err := f.Float32("b.weight")
	if err != nil || !slices.Equal(shape, []int{2, 3}) || !slices.Equal(got, f32) {
		t.Errorf("b.weight = %v %v %v, want %v", got, shape, err, f32)
	}
	ids, _, err := f.Int64("a.ids")
	if err != nil || !slices.Equal(ids, i64) {
		t.Errorf("a.ids = %v %v", ids, err)
	}
	h, _, err := f.Float32("c.half")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range f32 {
		if want := safetensors.HalfToFloat32(Half(v)); h[i] != want {
			t.Errorf("c.half[%d] = %g, want %g", i, h[i], want)
		}
	}
	s, shape, err := f.Float32("d.scalar")
	if err != nil || len(shape) != 0 || len(s) != 1 || s[0] != 42 {
		t.Errorf("d.scalar = %v %v %v", s, shape, err)
	}
}

func TestWriteRejects(t *testing.T) {
	noop := func(Entry, []byte) error { return nil }
	for _, es := range [][]Entry{
		{{Name: "a", DType: "F32", Shape: []int{1}}, {Name: "a", DType: "F32", Shape: []int{1}}},
		{{Name: "a", DType: "X9", Shape: []int{1}}},
		{{Name: "a", DType: "F32", Shape: []int{-1}}},
		{{Name: "__metadata__", DType: "F32", Shape: []int{1}}},
	} {
		if err := Write(new(bytes.Buffer), es, nil, noop); err == nil {
			t.Errorf("Write(%v) succeeded", es)
		}
	}
}

// Every finite half converts back to itself; midpoints between neighbours
// round to the even one, points just off a midpoint to the nearer one.
func TestHalfRounding(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		v := safetensors.HalfToFloat32(uint16(h))
		if math.IsNaN(float64(v)) {
			if got := Half(v); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("Half(NaN %#04x) = %#04x, not a NaN", h, got)
			}
			continue
		}
		if got := Half(v); got != uint16(h) {
			t.Fatalf("Half(%g) = %#04x, want %#04x", v, got, h)
		}
		if h&0x7fff >= 0x7bff { // largest finite and beyond: no next finite value
			continue
		}
		next := safetensors.HalfToFloat32(uint16(h + 1))
		mid := (float64(v) + float64(next)) / 2 // exact in float64, and in float32 here
		even := uint16(h)
		if h&1 == 1 {
			even = uint16(h + 1)
		}
		if got := Half(float32(mid)); got != even {
			t.Fatalf("Half(mid %g) = %#04x, want %#04x", mid, got, even)
		}
		lo := math.Nextafter32(float32(mid), float32(v))
		hi := math.Nextafter32(float32(mid), float32(next))
		if got := Half(lo); got != uint16(h) {
			t.Fatalf("Half(%g) = %#04x, want %#04x", lo, got, h)
		}
		if got := Half(hi); got != uint16(h+1) {
			t.Fatalf("Half(%g) = %#04x, want %#04x", hi, got, h+1)
		}
	}
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{65504, 0x7bff}, {65519, 0x7bff}, {65520, 0x7c00}, {1e6, 0x7c00}, {-1e6, 0xfc00},
		{float32(math.Ldexp(1, -25)), 0}, {float32(math.Ldexp(1.0001, -25)), 1}, {1e-30, 0},
		{float32(math.Inf(-1)), 0xfc00},
	} {
		if got := Half(tc.f); got != tc.want {
			t.Errorf("Half(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
}
