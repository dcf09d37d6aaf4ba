package safetensors

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// bigFile writes a file of more than MinMapSize bytes: a 1-byte U8 tensor
// first (so the next tensor starts at an odd offset: "odd" is unaligned),
// "odd" of n F16 values, then "even" (after a second byte) and "w" F32.
func bigFile(t *testing.T) (path string, half []uint16) {
	t.Helper()
	n := MinMapSize/2 + 1000
	half = make([]uint16, n)
	for i := range half {
		half[i] = uint16(i*7919) ^ 0x3c00
	}
	b := u16Bytes(half...)
	path = filepath.Join(t.TempDir(), "big.safetensors")
	specs := []tensorSpec{
		{"a", "U8", []int{1}, []byte{9}},
		{"odd", "F16", []int{n}, b},
		{"b", "U8", []int{1}, []byte{8}},
		{"even", "F16", []int{n}, b},
		{"w", "F32", []int{2}, f32Bytes(1.5, -2)},
	}
	if err := os.WriteFile(path, encode(t, specs, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, half
}

func TestMappedViews(t *testing.T) {
	path, want := bigFile(t)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Mapped() && runtime.GOOS == "linux" {
		t.Error("a file of more than MinMapSize bytes is not mapped on Linux")
	}
	var views [][]uint16
	var keeps []any
	for _, name := range []string{"odd", "even"} {
		v, keep, sh, err := f.HalfView(name)
		if err != nil || len(sh) != 1 || sh[0] != len(want) {
			t.Fatalf("HalfView(%s): %v %v", name, sh, err)
		}
		if !equalU16(v, want) {
			t.Fatalf("HalfView(%s) differs from the stored values", name)
		}
		c, _, err := f.Half(name)
		if err != nil || !equalU16(c, want) {
			t.Fatalf("Half(%s): %v", name, err)
		}
		raw, _, err := f.Bytes(name)
		rv, _, _, verr := f.View(name)
		if err != nil || verr != nil || !bytes.Equal(raw, rv) {
			t.Fatalf("View(%s) differs from Bytes: %v %v", name, err, verr)
		}
		views, keeps = append(views, v), append(keeps, keep)
	}
	// The tensor at an odd offset cannot be used in place: it is copied.
	if f.Mapped() && keeps[0] != nil {
		t.Error("an unaligned float16 tensor was lent in place")
	}
	if f.Mapped() && keeps[1] == nil {
		t.Error("an aligned float16 tensor of a mapped file was copied")
	}
	if w, _, err := f.Float32("w"); err != nil || w[0] != 1.5 || w[1] != -2 {
		t.Errorf("Float32(w) = %v, %v", w, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := f.Float32("w"); err == nil {
		t.Error("a read after Close succeeded")
	}
	f = nil
	runtime.GC()
	runtime.GC() // a mapping still kept must survive collections
	for i, v := range views {
		if !equalU16(v, want) {
			t.Errorf("view %d changed after Close", i)
		}
	}
	runtime.KeepAlive(keeps)
}

func TestMappedTruncated(t *testing.T) {
	path, _ := bigFile(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-4096); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !errors.Is(err, ErrFormat) {
		t.Errorf("Open of a truncated file: %v, want a format error", err)
	}
}

func TestSmallFileNotMapped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(p, encode(t, []tensorSpec{{"h", "F16", []int{2}, u16Bytes(0x3c00, 0xc000)}}, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Mapped() {
		t.Error("a file under MinMapSize was mapped")
	}
	v, keep, _, err := f.HalfView("h")
	if err != nil || keep != nil || !equalU16(v, []uint16{0x3c00, 0xc000}) {
		t.Errorf("HalfView = %v, %v, %v", v, keep, err)
	}
}

// TestToFloat32HalfExhaustive checks the branch-free F16 path of ToFloat32
// against HalfToFloat32, bit for bit, on every binary16 value.
func TestToFloat32HalfExhaustive(t *testing.T) {
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	got, err := ToFloat32(u16Bytes(all...), "F16")
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range all {
		if w := HalfToFloat32(h); math.Float32bits(got[i]) != math.Float32bits(w) {
			t.Fatalf("half %#04x: got %#08x want %#08x", h, math.Float32bits(got[i]), math.Float32bits(w))
		}
	}
}

func TestUint16View(t *testing.T) {
	b := []byte{1, 2, 3, 4, 5}
	if v := Uint16View(b[1:5]); len(v) != 2 || v[0] != 0x0302 || v[1] != 0x0504 {
		t.Errorf("Uint16View = %#x", v)
	}
	if v := Uint16View(b[:4]); len(v) != 2 || v[0] != 0x0201 || v[1] != 0x0403 {
		t.Errorf("Uint16View = %#x", v)
	}
}

func equalU16(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
