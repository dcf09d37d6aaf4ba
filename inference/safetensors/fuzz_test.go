package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fuzzSeeds are small valid and broken files; TestWriteFuzzSeeds stores them
// in testdata/fuzz/FuzzNewReader.
func fuzzSeeds(t testing.TB) [][]byte {
	good := encode(t, []tensorSpec{
		{"a", "F32", []int{2}, f32Bytes(1, 2)},
		{"b", "F16", []int{1, 1}, u16Bytes(0x7c00)},
		{"c", "BF16", []int{1}, u16Bytes(0xffc1)},
		{"d", "I64", []int{1}, make([]byte, 8)},
		{"e", "F8_E4M3", []int{2}, []byte{0x7f, 0x01}},
	}, map[string]string{"format": "pt"})
	return [][]byte{
		good,
		good[:len(good)-3],
		encode(t, nil, nil),
		rawFile(t, map[string]any{"a": map[string]any{"dtype": "U8", "shape": []int{2}, "data_offsets": []int{0, 1}}}, []byte{0}),
		append(binary.LittleEndian.AppendUint64(nil, 4), "{}  "...),
		[]byte("\x89PNG\r\n\x1a\n"),
		rawHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 2),
		rawHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"dtype":"I8"},"__metadata__":{"k":"1","k":"2"}}`, 1),
		rawHeader(manyEmpty(3), 0),
		[]byte("version https://git-lfs.github.com/spec/v1\noid sha256:4c86\nsize 4265146304\n"),
		[]byte("<!DOCTYPE html><html><body>404</body></html>"),
	}
}

// FuzzNewReader checks that no input makes the reader panic or allocate
// beyond the input's size, and that accepted files read back consistently.
func FuzzNewReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var total int64
		for _, name := range sf.Names() {
			info, ok := sf.Info(name)
			if !ok || info.Offset < 8 || info.Offset+info.Length > int64(len(data)) {
				t.Fatalf("tensor %q: bad info %+v for %d bytes", name, info, len(data))
			}
			total += info.Length
			v, shape, err := sf.Float32(name)
			if err != nil {
				if _, ok := err.(interface{ Unwrap() error }); !ok {
					t.Fatalf("unwrapped error %v", err)
				}
				continue
			}
			if len(v) != info.Numel() || len(shape) != len(info.Shape) {
				t.Fatalf("tensor %q: %d values for shape %v", name, len(v), shape)
			}
			sf.Int64(name)
			sf.Half(name)
		}
		if hdr := int64(binary.LittleEndian.Uint64(data)); 8+hdr+total != int64(len(data)) {
			t.Fatalf("tensors cover %d bytes of %d", 8+hdr+total, len(data))
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzNewReader when
// PERFUSION_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PERFUSION_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set PERFUSION_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzNewReader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds(t) {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
