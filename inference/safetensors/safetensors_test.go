package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// tensorSpec is one tensor for encode.
type tensorSpec struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

// encode writes a safetensors file (header padded to 8 bytes with spaces,
// tensors in the given order).
func encode(t testing.TB, specs []tensorSpec, meta map[string]string) []byte {
	t.Helper()
	hdr := map[string]any{}
	if meta != nil {
		hdr["__metadata__"] = meta
	}
	var off int
	var data []byte
	for _, s := range specs {
		hdr[s.name] = map[string]any{"dtype": s.dtype, "shape": s.shape, "data_offsets": []int{off, off + len(s.data)}}
		off += len(s.data)
		data = append(data, s.data...)
	}
	return rawFile(t, hdr, data)
}

// rawFile writes header JSON of any content, then data.
func rawFile(t testing.TB, hdr any, data []byte) []byte {
	t.Helper()
	h, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

func f32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func u16Bytes(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func open(t testing.TB, b []byte) (*File, error) {
	t.Helper()
	return NewReader(bytes.NewReader(b), int64(len(b)))
}

func TestRoundTrip(t *testing.T) {
	specs := []tensorSpec{
		{"a.f32", "F32", []int{2, 2}, f32Bytes(1, -2, 3.5, 0)},
		{"b.f16", "F16", []int{3}, u16Bytes(0x3c00, 0xc000, 0x0001)}, // 1, -2, 2^-24
		{"c.bf16", "BF16", []int{2}, u16Bytes(0x3f80, 0x4049)},       // 1, 3.140625
		{"d.i64", "I64", []int{1, 2}, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 7), math.MaxUint64)},
		{"e.empty", "F32", []int{0, 5}, nil},
		{"f.u8", "U8", []int{}, []byte{200}},
	}
	f, err := open(t, encode(t, specs, map[string]string{"format": "pt"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Names(), ","); got != "a.f32,b.f16,c.bf16,d.i64,e.empty,f.u8" {
		t.Errorf("names %s", got)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	check := func(name string, want []float32) {
		t.Helper()
		got, _, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v want %v", name, got, want)
		}
	}
	check("a.f32", []float32{1, -2, 3.5, 0})
	check("b.f16", []float32{1, -2, float32(math.Ldexp(1, -24))})
	check("c.bf16", []float32{1, 3.140625})
	check("d.i64", []float32{7, -1})
	check("e.empty", []float32{})
	check("f.u8", []float32{200})
	ints, shape, err := f.Int64("d.i64")
	if err != nil || fmt.Sprint(ints, shape) != "[7 -1] [1 2]" {
		t.Errorf("Int64: %v %v %v", ints, shape, err)
	}
	h, _, err := f.Half("b.f16")
	if err != nil || fmt.Sprint(h) != "[15360 49152 1]" {
		t.Errorf("Half: %v %v", h, err)
	}
	if _, _, err := f.Half("a.f32"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Half of F32: %v, want ErrUnsupported", err)
	}
	if _, _, err := f.Float32("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("missing tensor: %v", err)
	}
	info, _ := f.Info("a.f32")
	info.Shape[0] = 99 // must not alias the file's copy
	if again, _ := f.Info("a.f32"); again.Shape[0] != 2 {
		t.Error("Info shares its shape slice")
	}
	sec, _, err := f.Section("a.f32")
	if err != nil || sec.Size() != 16 {
		t.Errorf("Section: %v %v", sec, err)
	}
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.safetensors")
	if err := os.WriteFile(p, encode(t, []tensorSpec{{"w", "F32", []int{1}, f32Bytes(4)}}, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v, _, err := f.Float32("w"); err != nil || v[0] != 4 {
		t.Errorf("got %v %v", v, err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "folder") {
		t.Errorf("Open(dir): %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); err == nil {
		t.Error("Open(missing) succeeded")
	}
}

func TestBadFiles(t *testing.T) {
	good := []tensorSpec{{"a", "F32", []int{2}, f32Bytes(1, 2)}, {"b", "F16", []int{1}, u16Bytes(1)}}
	entry := func(dtype string, shape []int, off ...int) map[string]any {
		return map[string]any{"dtype": dtype, "shape": shape, "data_offsets": off}
	}
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...)
	cases := []struct {
		name string
		file []byte
		want string
		kind error
	}{
		{"empty", nil, "too short", ErrFormat},
		{"seven bytes", []byte("1234567"), "too short", ErrFormat},
		{"png renamed", png, "PNG image", ErrFormat},
		{"zip renamed", append([]byte("PK\x03\x04"), make([]byte, 60)...), "zip archive", ErrFormat},
		{"huge header length", append(binary.LittleEndian.AppendUint64(nil, 1<<40), "{}"...), "starts with bytes 00 00 00 00 00 01 00 00, which is no safetensors header length", ErrFormat},
		{"foreign binary", append([]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}, make([]byte, 60)...), "starts with bytes de ad be ef 01 02 03 04", ErrFormat},
		{"text file", []byte("these are my notes about models\n"), `a text file (starting "these are my notes`, ErrFormat},
		{"html page", []byte("\n<!DOCTYPE html><html><body>Not found</body></html>"), "an HTML page", ErrFormat},
		{"git lfs pointer", []byte("version https://git-lfs.github.com/spec/v1\noid sha256:4c86\nsize 4265146304\n"), "Git LFS pointer", ErrFormat},
		{"duplicate tensor", rawHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 2), `tensor "a" appears twice`, ErrFormat},
		{"duplicate field", rawHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"dtype":"I8"}}`, 1), `key "dtype" appears twice in the header entry "a"`, ErrFormat},
		{"duplicate metadata", rawHeader(`{"__metadata__":{"k":"1","k":"2"}}`, 0), `key "k" appears twice`, ErrFormat},
		{"deep entry", rawHeader(`{"a":{"dtype":"U8","shape":[[[1]]],"data_offsets":[0,1]}}`, 1), "nests deeper", ErrFormat},
		{"huge shape", rawHeader(`{"a":{"dtype":"U8","shape":[`+strings.Repeat("1,", 2000)+`1],"data_offsets":[0,1]}}`, 1), "more than 1024 JSON values", ErrFormat},
		{"too many tensors", rawHeader(manyEmpty(MaxTensors+1), 0), "more than 16384 tensors", ErrUnsupported},
		{"truncated header", encode(t, good, nil)[:20], "does not fit", ErrFormat},
		{"header not json", append(binary.LittleEndian.AppendUint64(nil, 8), "{abcdefg"...), "not a JSON object", ErrFormat},
		{"header is a list", append(binary.LittleEndian.AppendUint64(nil, 8), "[1,2,3] "...), "does not start with '{'", ErrFormat},
		{"trailing json", append(binary.LittleEndian.AppendUint64(nil, 8), "{} {}   "...), "trailing data", ErrFormat},
		{"truncated data", encode(t, good, nil)[:len(encode(t, good, nil))-1], "truncated", ErrFormat},
		{"extra bytes", append(encode(t, good, nil), 0, 0), "after the last tensor", ErrFormat},
		{"unknown dtype", rawFile(t, map[string]any{"a": entry("F7", []int{1}, 0, 1)}, []byte{0}), `unknown dtype "F7"`, ErrUnsupported},
		{"shape mismatch", rawFile(t, map[string]any{"a": entry("F32", []int{3}, 0, 8)}, make([]byte, 8)), "needs 12 bytes", ErrFormat},
		{"negative dim", rawFile(t, map[string]any{"a": entry("F32", []int{-1}, 0, 4)}, make([]byte, 4)), "bad shape", ErrFormat},
		{"overflowing shape", rawFile(t, map[string]any{"a": entry("F32", []int{1 << 31, 1 << 31, 1 << 31}, 0, 4)}, make([]byte, 4)), "bad shape", ErrFormat},
		{"reversed offsets", rawFile(t, map[string]any{"a": entry("U8", []int{1}, 1, 0)}, make([]byte, 1)), "bad data_offsets", ErrFormat},
		{"one offset", rawFile(t, map[string]any{"a": entry("U8", []int{1}, 1)}, make([]byte, 1)), "bad data_offsets", ErrFormat},
		{"negative offset", rawFile(t, map[string]any{"a": entry("U8", []int{1}, -1, 0)}, make([]byte, 1)), "bad data_offsets", ErrFormat},
		{"offset past end", rawFile(t, map[string]any{"a": entry("U8", []int{4}, 100, 104)}, make([]byte, 4)), "unused bytes", ErrFormat},
		{"range past end", rawFile(t, map[string]any{"a": entry("U8", []int{8}, 0, 8)}, make([]byte, 4)), "truncated", ErrFormat},
		{"overlap", rawFile(t, map[string]any{"a": entry("U8", []int{4}, 0, 4), "b": entry("U8", []int{4}, 2, 6)}, make([]byte, 6)), "overlap", ErrFormat},
		{"hole", rawFile(t, map[string]any{"a": entry("U8", []int{2}, 0, 2), "b": entry("U8", []int{2}, 4, 6)}, make([]byte, 6)), "unused bytes", ErrFormat},
		{"missing field", rawFile(t, map[string]any{"a": map[string]any{"dtype": "U8", "data_offsets": []int{0, 1}}}, []byte{0}), "needs dtype, shape", ErrFormat},
		{"entry not object", rawFile(t, map[string]any{"a": 5}, nil), `tensor "a"`, ErrFormat},
		{"bad metadata", rawFile(t, map[string]any{"__metadata__": map[string]any{"x": 1}}, nil), "__metadata__", ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := open(t, c.file)
			if err == nil {
				t.Fatalf("accepted, want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "safetensors:") {
				t.Errorf("error %q, want it to start with safetensors: and contain %q", err, c.want)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("error %q does not wrap %v", err, c.kind)
			}
		})
	}
}

// rawHeader makes a file of a literal JSON header (kept as written, with
// any duplicate keys) and data bytes of zeros.
func rawHeader(h string, data int) []byte {
	for len(h)%8 != 0 {
		h += " "
	}
	b := append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...)
	return append(b, make([]byte, data)...)
}

// manyEmpty is a header of n empty tensors.
func manyEmpty(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"t%d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`, i)
	}
	b.WriteString("}")
	return b.String()
}

// TestManyTensorsBoundedMemory refuses a 50 MB header of a million empty
// tensors without building them: the walk stops at MaxTensors (past that
// point this header repeats one entry, which nothing reads).
func TestManyTensorsBoundedMemory(t *testing.T) {
	size := 50 << 20
	if testing.Short() {
		size = 5 << 20
	}
	h := manyEmpty(MaxTensors + 1)
	entry := `,"t":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`
	h = h[:len(h)-1] + strings.Repeat(entry, (size-len(h))/len(entry)) + "}"
	file := rawHeader(h, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := NewReader(bytes.NewReader(file), int64(len(file)))
	runtime.ReadMemStats(&after)
	if err == nil || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("%d-byte header: %v", len(file), err)
	}
	// The header itself is read; beyond it the walk allocates per tensor
	// up to MaxTensors only.
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(len(file))+32<<20; got > limit {
		t.Errorf("%d-byte header: allocated %d bytes, want at most %d", len(file), got, limit)
	}
	// At the bound, the file opens.
	ok := rawHeader(manyEmpty(MaxTensors), 0)
	if f, err := NewReader(bytes.NewReader(ok), int64(len(ok))); err != nil || len(f.Names()) != MaxTensors {
		t.Errorf("%d tensors: %v", MaxTensors, err)
	}
}

// TestHeaderPaddingAndOrder accepts tensors stored out of name order and an
// empty file (no tensors).
func TestHeaderPaddingAndOrder(t *testing.T) {
	f, err := open(t, encode(t, []tensorSpec{{"z", "U8", []int{1}, []byte{1}}, {"a", "U8", []int{1}, []byte{2}}}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := f.Int64("a"); v[0] != 2 {
		t.Errorf("a = %v", v)
	}
	if f, err := open(t, rawFile(t, map[string]any{}, nil)); err != nil || len(f.Names()) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

// halfRef is the binary16 value written plainly from its definition.
func halfRef(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return sign * m / 1024 * math.Pow(2, -14)
	case 31:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * (1 + m/1024) * math.Pow(2, float64(e-15))
}

func TestHalfExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got, want := HalfToFloat32(uint16(h)), halfRef(uint16(h))
		if math.IsNaN(want) {
			// NaN keeps sign and payload (shifted into the top mantissa bits).
			bits := math.Float32bits(got)
			if !math.IsNaN(float64(got)) || bits>>31 != uint32(h>>15) || (bits>>13)&0x3ff != uint32(h)&0x3ff {
				t.Fatalf("half %#04x: got %v (%#08x), want NaN with the same sign and payload", h, got, bits)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("half %#04x: got %v want %v", h, got, want)
		}
	}
}

func TestBFloat16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := (h>>7)&0xff, float64(h&0x7f)
		var want float64
		switch e {
		case 0:
			want = sign * m / 128 * math.Pow(2, -126)
		case 255:
			want = math.Inf(int(sign))
			if m != 0 {
				want = math.NaN()
			}
		default:
			want = sign * (1 + m/128) * math.Pow(2, float64(e-127))
		}
		got := BFloat16ToFloat32(uint16(h))
		if math.IsNaN(want) != math.IsNaN(float64(got)) || (!math.IsNaN(want) && float64(got) != want) ||
			math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("bf16 %#04x: got %v want %v", h, got, want)
		}
	}
}

func TestFloat8Exhaustive(t *testing.T) {
	for v := 0; v < 256; v++ {
		sign := 1.0
		if v&0x80 != 0 {
			sign = -1
		}
		// E4M3 (fn): bias 7, no infinities, S.1111.111 = NaN.
		e, m := (v>>3)&0xf, float64(v&7)
		want := sign * (1 + m/8) * math.Pow(2, float64(e-7))
		if e == 0 {
			want = sign * m / 8 * math.Pow(2, -6)
		}
		got := float64(E4M3ToFloat32(uint8(v)))
		if e == 15 && v&7 == 7 {
			if !math.IsNaN(got) {
				t.Errorf("e4m3 %#02x: got %v want NaN", v, got)
			}
		} else if got != want {
			t.Errorf("e4m3 %#02x: got %v want %v", v, got, want)
		}
		// E5M2: bias 15, IEEE-like.
		f, err := ToFloat32([]byte{byte(v)}, "F8_E5M2")
		if err != nil {
			t.Fatal(err)
		}
		e5, m5 := (v>>2)&0x1f, float64(v&3)
		want = sign * (1 + m5/4) * math.Pow(2, float64(e5-15))
		switch {
		case e5 == 0:
			want = sign * m5 / 4 * math.Pow(2, -14)
		case e5 == 31 && m5 == 0:
			want = math.Inf(int(sign))
		case e5 == 31:
			want = math.NaN()
		}
		if math.IsNaN(want) != math.IsNaN(float64(f[0])) || (!math.IsNaN(want) && float64(f[0]) != want) {
			t.Errorf("e5m2 %#02x: got %v want %v", v, f[0], want)
		}
	}
}

func TestConversions(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		dtype string
		raw   []byte
		want  string
	}{
		{"F64", le.AppendUint64(nil, math.Float64bits(0.1)), "[0.1]"},
		{"I32", le.AppendUint32(nil, uint32(0xffffffff)), "[-1]"},
		{"U32", le.AppendUint32(nil, uint32(0xffffffff)), "[4.294967295e+09]"},
		{"I16", le.AppendUint16(nil, 0x8000), "[-32768]"},
		{"U16", le.AppendUint16(nil, 0x8000), "[32768]"},
		{"I8", []byte{0xff}, "[-1]"},
		{"BOOL", []byte{1, 0}, "[1 0]"},
		{"U64", le.AppendUint64(nil, 1<<63), "[9.223372036854776e+18]"},
	}
	for _, c := range cases {
		got, err := ToFloat64(c.raw, c.dtype)
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("%s: got %v %v want %s", c.dtype, got, err, c.want)
		}
	}
	if _, err := ToFloat32([]byte{1, 2, 3}, "F32"); !errors.Is(err, ErrFormat) {
		t.Errorf("ragged bytes: %v", err)
	}
	if _, err := ToFloat32(nil, "C64"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown dtype: %v", err)
	}
	if _, err := ToInt64(nil, "F32"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Int64 of F32: %v", err)
	}
}
