package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestWriterRoundTrip(t *testing.T) {
	f32 := []float32{1, -2.5, 3e-8, float32(math.Inf(1)), 0, 7}
	entries := []Entry{
		{Name: "b.weight", DType: "F32", Shape: []int{2, 3}},
		{Name: "a.ids", DType: "I64", Shape: []int{1, 4}},
		{Name: "c.half", DType: "F16", Shape: []int{6}},
		{Name: "c.brain", DType: "BF16", Shape: []int{3, 2}},
		{Name: "d.scalar", DType: "F32"},
		{Name: "e.bytes", DType: "U8", Shape: []int{3}},
		{Name: "f.empty", DType: "F32", Shape: []int{0, 5}},
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	w, err := Create(path, entries, map[string]string{"format": "pt", "note": "<a & b>"})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for {
		e, ok := w.Next()
		if !ok {
			break
		}
		order = append(order, e.Name)
		switch e.Name {
		case "b.weight", "c.half", "c.brain":
			err = w.WriteFloat32(e.Name, f32)
		case "a.ids":
			err = w.WriteInt64(e.Name, []int64{0, 1, -2, math.MaxInt64})
		case "d.scalar":
			err = w.WriteFloat32(e.Name, []float32{42})
		case "e.bytes":
			err = w.WriteTensor(e.Name, []byte{1, 2, 255})
		case "f.empty":
			err = w.WriteTensor(e.Name, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Wider dtypes first, then by name.
	if want := []string{"a.ids", "b.weight", "d.scalar", "f.empty", "c.brain", "c.half", "e.bytes"}; !slices.Equal(order, want) {
		t.Errorf("write order %v, want %v", order, want)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file visible before Close: %v", err)
	}
	size := w.Size()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != size {
		t.Fatalf("stat %v, size want %d", err, size)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["format"] != "pt" || f.Metadata["note"] != "<a & b>" {
		t.Errorf("metadata %v", f.Metadata)
	}
	got, shape, err := f.Float32("b.weight")
	if err != nil || !slices.Equal(shape, []int{2, 3}) || !slices.Equal(got, f32) {
		t.Errorf("b.weight = %v %v %v, want %v", got, shape, err, f32)
	}
	ids, _, err := f.Int64("a.ids")
	if err != nil || !slices.Equal(ids, []int64{0, 1, -2, math.MaxInt64}) {
		t.Errorf("a.ids = %v %v", ids, err)
	}
	for name, conv := range map[string]func(float32) float32{
		"c.half":  func(v float32) float32 { return HalfToFloat32(Float32ToHalf(v)) },
		"c.brain": func(v float32) float32 { return BFloat16ToFloat32(Float32ToBFloat16(v)) },
	} {
		h, _, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range f32 {
			if want := conv(v); h[i] != want {
				t.Errorf("%s[%d] = %g, want %g", name, i, h[i], want)
			}
		}
	}
	if s, shape, err := f.Float32("d.scalar"); err != nil || len(shape) != 0 || !slices.Equal(s, []float32{42}) {
		t.Errorf("d.scalar = %v %v %v", s, shape, err)
	}
	if b, _, err := f.Bytes("e.bytes"); err != nil || !bytes.Equal(b, []byte{1, 2, 255}) {
		t.Errorf("e.bytes = %v %v", b, err)
	}
	if info, ok := f.Info("f.empty"); !ok || info.Length != 0 || !slices.Equal(info.Shape, []int{0, 5}) {
		t.Errorf("f.empty = %+v", info)
	}
}

// randomEntries draws a tensor set: random names (quotes, unicode,
// shared prefixes), dtypes, and shapes with scalars and zero dimensions.
func randomEntries(r *rand.Rand) []Entry {
	dtypes := []string{"F32", "F16", "BF16", "I64", "U8", "F64", "I32", "I8", "BOOL"}
	pieces := []string{"a", "b", ".", "weight", "é", "\"", "\\", "<", "日本", " ", "0", "__"}
	seen := map[string]bool{}
	var es []Entry
	for range r.IntN(12) {
		var name strings.Builder
		for range 1 + r.IntN(4) {
			name.WriteString(pieces[r.IntN(len(pieces))])
		}
		if seen[name.String()] || name.String() == "__metadata__" {
			continue
		}
		seen[name.String()] = true
		shape := make([]int, r.IntN(4))
		for i := range shape {
			shape[i] = r.IntN(5)
		}
		es = append(es, Entry{Name: name.String(), DType: dtypes[r.IntN(len(dtypes))], Shape: shape})
	}
	return es
}

// Random tensor sets written to memory read back byte-exactly with the
// strict reader, with an 8-byte-aligned header and every tensor aligned to
// its element size.
func TestWriterProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		es := randomEntries(r)
		data := map[string][]byte{}
		for _, e := range es {
			b := make([]byte, e.Size())
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			data[e.Name] = b
		}
		var meta map[string]string
		if r.IntN(2) == 0 {
			meta = map[string]string{"k": fmt.Sprint(iter), "quote\"": "é\n"}
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, es, meta)
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		for {
			e, ok := w.Next()
			if !ok {
				break
			}
			if err := w.WriteTensor(e.Name, data[e.Name]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if int64(buf.Len()) != w.Size() {
			t.Fatalf("iter %d: wrote %d bytes, Size %d", iter, buf.Len(), w.Size())
		}
		n := binary.LittleEndian.Uint64(buf.Bytes())
		if n%8 != 0 || !bytes.HasSuffix(bytes.TrimRight(buf.Bytes()[8:8+n], " "), []byte("}")) {
			t.Fatalf("iter %d: header length %d, header %q", iter, n, buf.Bytes()[8:8+n])
		}
		f, err := NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		if len(f.Names()) != len(es) || len(f.Metadata) != len(meta) {
			t.Fatalf("iter %d: %d tensors, %d metadata; want %d, %d", iter, len(f.Names()), len(f.Metadata), len(es), len(meta))
		}
		for k, v := range meta {
			if f.Metadata[k] != v {
				t.Errorf("iter %d: metadata %q = %q, want %q", iter, k, f.Metadata[k], v)
			}
		}
		for _, e := range es {
			info, ok := f.Info(e.Name)
			if !ok || info.DType != e.DType || !slices.Equal(info.Shape, append([]int{}, e.Shape...)) {
				t.Fatalf("iter %d: %q read as %+v, want %+v", iter, e.Name, info, e)
			}
			if (info.Offset-int64(8+n))%int64(DTypeSize(e.DType)) != 0 {
				t.Errorf("iter %d: %q at data offset %d, not aligned to %s", iter, e.Name, info.Offset-int64(8+n), e.DType)
			}
			b, _, err := f.Bytes(e.Name)
			if err != nil || !bytes.Equal(b, data[e.Name]) {
				t.Fatalf("iter %d: %q bytes differ (%v)", iter, e.Name, err)
			}
		}
	}
}

func TestWriterRejects(t *testing.T) {
	f32 := func(name string, shape ...int) Entry { return Entry{Name: name, DType: "F32", Shape: shape} }
	for _, tc := range []struct {
		es   []Entry
		meta map[string]string
		want string
	}{
		{es: []Entry{f32("a", 1), f32("a", 1)}, want: "twice"},
		{es: []Entry{{Name: "a", DType: "X9", Shape: []int{1}}}, want: "unknown dtype"},
		{es: []Entry{f32("a", -1)}, want: "negative"},
		{es: []Entry{f32("__metadata__", 1)}, want: "reserved"},
		{es: []Entry{f32("", 1)}, want: "empty name"},
		{es: []Entry{f32("\xff", 1)}, want: "UTF-8"},
		{es: []Entry{f32("a", 1<<31, 1<<31, 1<<31)}, want: "too large"},
		{meta: map[string]string{"k": "\xfe"}, want: "UTF-8"},
	} {
		_, err := NewWriter(io.Discard, tc.es, tc.meta)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "safetensors: ") {
			t.Errorf("NewWriter(%v, %v) = %v, want an error about %q", tc.es, tc.meta, err, tc.want)
		}
	}
}

func TestWriterMisuse(t *testing.T) {
	es := []Entry{{Name: "a", DType: "F32", Shape: []int{2}}, {Name: "b", DType: "F32", Shape: []int{1}}}
	w, err := NewWriter(io.Discard, es, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32("b", []float32{1}); err == nil || !strings.Contains(err.Error(), `next tensor in the file is "a"`) {
		t.Errorf("out of order: %v", err)
	}
	if err := w.WriteFloat32("a", []float32{1}); err == nil {
		t.Error("wrong length accepted")
	}
	if err := w.WriteTensor("a", make([]byte, 4)); err == nil {
		t.Error("wrong byte count accepted")
	}
	if err := w.WriteInt64("a", []int64{1, 2}); err == nil || !errors.Is(err, ErrUnsupported) {
		t.Errorf("integers into F32: %v", err)
	}
	if err := w.WriteFloat32("a", []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), `"b" is next`) {
		t.Errorf("Close with a tensor missing: %v", err)
	}

	w, err = NewWriter(io.Discard, []Entry{{Name: "u", DType: "U8", Shape: []int{1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInt64("u", []int64{256}); err == nil || !strings.Contains(err.Error(), "does not fit U8") {
		t.Errorf("256 as U8: %v", err)
	}
	if err := w.WriteInt64("u", []int64{255}); err != nil || w.Close() != nil {
		t.Errorf("a rejected value before any byte went out should leave the writer usable: %v", err)
	}

	// A bad value after part of the tensor went out fails the writer.
	big := make([]int64, 3*writeChunk)
	big[len(big)-1] = -1
	w, err = NewWriter(io.Discard, []Entry{{Name: "u", DType: "U8", Shape: []int{len(big)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInt64("u", big); err == nil {
		t.Fatal("-1 as U8 accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a half-written tensor succeeded")
	}
}

// failFile is a temporary file whose writes fail with ENOSPC once limit
// bytes are written, as on a full disk.
type failFile struct {
	*os.File
	limit int
}

func (f *failFile) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n, _ := f.File.Write(p[:f.limit])
		f.limit = 0
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.limit -= len(p)
	return f.File.Write(p)
}

// A full disk fails the write with a clear error and leaves neither the
// file nor a temporary file behind; an existing file is kept unchanged.
func TestWriterDiskFull(t *testing.T) {
	for _, limit := range []int{0, 100, 3 << 20} {
		dir := t.TempDir()
		path := filepath.Join(dir, "full.safetensors")
		if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		open := func(dir, pattern string) (tempFile, error) {
			f, err := os.CreateTemp(dir, pattern)
			if err != nil {
				return nil, err
			}
			return &failFile{File: f, limit: limit}, nil
		}
		es := []Entry{{Name: "big", DType: "F32", Shape: []int{1 << 20}}, {Name: "small", DType: "F16", Shape: []int{3}}}
		w, err := create(path, es, nil, open)
		if err == nil {
			for err == nil {
				e, ok := w.Next()
				if !ok {
					break
				}
				err = w.WriteFloat32(e.Name, make([]float32, e.Size()/int64(DTypeSize(e.DType))))
			}
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk is full") || !strings.Contains(err.Error(), path) {
			t.Errorf("limit %d: error %v, want a full-disk error naming the file", limit, err)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("limit %d: folder holds %d entries after the failure, want only the old file", limit, len(ents))
		}
		if b, _ := os.ReadFile(path); string(b) != "old" {
			t.Errorf("limit %d: the existing file changed to %d bytes", limit, len(b))
		}
	}
}

func TestWriteFileFillError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	stop := errors.New("stop here")
	err := WriteFile(path, []Entry{{Name: "a", DType: "F32", Shape: []int{2}}, {Name: "b", DType: "F32"}}, nil, func(e Entry, dst []byte) error {
		if e.Name == "b" {
			return stop
		}
		return EncodeFloat32(dst, []float32{1, 2}, e.DType)
	})
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("WriteFile = %v, want the fill error naming the tensor", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left after a failed WriteFile", len(ents))
	}
	if err := WriteFile(path, []Entry{{Name: "a", DType: "F32", Shape: []int{2}}}, nil, func(e Entry, dst []byte) error {
		return EncodeFloat32(dst, []float32{1, 2}, e.DType)
	}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v, _, _ := f.Float32("a"); !slices.Equal(v, []float32{1, 2}) {
		t.Errorf("a = %v", v)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
}

func TestWriterAbort(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "x.safetensors"), []Entry{{Name: "a", DType: "U8", Shape: []int{1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), ".x.safetensors.tmp-") {
		t.Errorf("while writing the folder holds %v, want one hidden temporary file", ents)
	}
	w.Abort()
	if err := w.WriteTensor("a", []byte{1}); err == nil {
		t.Error("write after Abort succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left after Abort", len(ents))
	}
}
