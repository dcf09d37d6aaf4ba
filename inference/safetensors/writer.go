package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"unicode/utf8"
)

// Entry describes one tensor of a file being written.
type Entry struct {
	Name  string
	DType string // a dtype DTypeSize knows: "F32", "F16", "BF16", "I64", "U8", ...
	Shape []int  // nil or empty for a scalar
}

// Size is the tensor's data size in bytes (0 for an unknown dtype).
func (e Entry) Size() int64 {
	n := int64(DTypeSize(e.DType))
	for _, d := range e.Shape {
		n *= int64(d)
	}
	return n
}

// Writer streams a safetensors file one tensor at a time, so a
// multi-gigabyte checkpoint never sits in memory whole. NewWriter (or
// Create) computes every tensor's byte range and writes the header at once;
// then each tensor's data is written, in the order Next gives, and Close
// finishes the file.
//
// The data section is laid out as the reference implementation does: wider
// dtypes first, then by name, so that every tensor's data starts at a
// multiple of its element size (the header length is padded with spaces to
// a multiple of 8).
//
// The first failed write is sticky: later calls return it.
type Writer struct {
	bw      *bufio.Writer
	entries []Entry // in data order
	next    int     // index of the next tensor to write
	total   int64   // file size
	buf     []byte  // encoding scratch of WriteFloat32 / WriteInt64
	err     error
	file    *atomicFile // set by Create
}

// writeChunk bounds the scratch buffer of WriteFloat32 and WriteInt64.
const writeChunk = 1 << 16

// NewWriter checks the entries, lays them out and writes the header
// (metadata, may be nil, goes under "__metadata__") to w.
func NewWriter(w io.Writer, entries []Entry, metadata map[string]string) (*Writer, error) {
	return newWriter(w, entries, metadata, nil)
}

func newWriter(w io.Writer, entries []Entry, metadata map[string]string, file *atomicFile) (*Writer, error) {
	es, header, err := layout(entries, metadata)
	if err != nil {
		return nil, err
	}
	sw := &Writer{bw: bufio.NewWriterSize(w, 1<<20), entries: es, total: int64(len(header)), file: file}
	for _, e := range es {
		sw.total += e.Size()
	}
	if _, err := sw.bw.Write(header); err != nil {
		return nil, sw.wrapWrite("", err)
	}
	return sw, nil
}

// layout validates the entries, sorts them into data order and encodes the
// header: 8-byte length, then the JSON padded with spaces to a multiple of 8.
func layout(entries []Entry, metadata map[string]string) ([]Entry, []byte, error) {
	es := make([]Entry, len(entries))
	copy(es, entries)
	sort.SliceStable(es, func(i, j int) bool {
		wi, wj := DTypeSize(es[i].DType), DTypeSize(es[j].DType)
		if wi != wj {
			return wi > wj
		}
		return es[i].Name < es[j].Name
	})
	type record struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	header := make(map[string]any, len(es)+1)
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("safetensors: metadata %q: not valid UTF-8", k)
		}
	}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for i, e := range es {
		if err := checkEntry(e); err != nil {
			return nil, nil, err
		}
		if i > 0 && es[i-1].Name == e.Name {
			return nil, nil, fmt.Errorf("safetensors: tensor %q listed twice", e.Name)
		}
		shape := append([]int{}, e.Shape...) // a scalar is "shape": []
		es[i].Shape = shape
		if off > math.MaxInt64-e.Size() {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: the file would exceed 2^63 bytes", e.Name)
		}
		header[e.Name] = record{DType: e.DType, Shape: shape, Offsets: [2]int64{off, off + e.Size()}}
		off += e.Size()
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(header); err != nil {
		return nil, nil, fmt.Errorf("safetensors: header: %w", err)
	}
	js.Truncate(js.Len() - 1) // Encode's newline
	for js.Len()%8 != 0 {
		js.WriteByte(' ')
	}
	if js.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d readers accept", js.Len(), MaxHeaderSize)
	}
	out := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+js.Len()), uint64(js.Len()))
	return es, append(out, js.Bytes()...), nil
}

// checkEntry rejects what no reader would accept.
func checkEntry(e Entry) error {
	switch {
	case e.Name == "":
		return errors.New("safetensors: a tensor has an empty name")
	case e.Name == "__metadata__":
		return fmt.Errorf("safetensors: tensor name %q is reserved", e.Name)
	case !utf8.ValidString(e.Name):
		return fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", e.Name)
	case DTypeSize(e.DType) == 0:
		return fmt.Errorf("safetensors: tensor %q: unknown dtype %q", e.Name, e.DType)
	}
	n := int64(DTypeSize(e.DType))
	for _, d := range e.Shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", e.Name, e.Shape)
		}
		if d > 0 && n > math.MaxInt64/8/int64(d) {
			return fmt.Errorf("safetensors: tensor %q: shape %v is too large", e.Name, e.Shape)
		}
		n *= int64(d)
	}
	return nil
}

// Size is the size in bytes of the whole file being written.
func (w *Writer) Size() int64 { return w.total }

// Next returns the tensor the next write must be, and false once all are
// written.
func (w *Writer) Next() (Entry, bool) {
	if w.next >= len(w.entries) {
		return Entry{}, false
	}
	e := w.entries[w.next]
	e.Shape = append([]int{}, e.Shape...)
	return e, true
}

// fail records err as the writer's sticky error and returns it.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// begin checks that name is the next tensor and returns its entry.
func (w *Writer) begin(name string) (Entry, error) {
	if w.err != nil {
		return Entry{}, w.err
	}
	e, ok := w.Next()
	switch {
	case !ok:
		return Entry{}, fmt.Errorf("safetensors: write %q: every tensor is already written", name)
	case e.Name != name:
		return Entry{}, fmt.Errorf("safetensors: write %q: the next tensor in the file is %q (see Writer.Next)", name, e.Name)
	}
	return e, nil
}

// write writes b, recording a failure.
func (w *Writer) write(name string, b []byte) error {
	if _, err := w.bw.Write(b); err != nil {
		return w.fail(w.wrapWrite(name, err))
	}
	return nil
}

// WriteTensor writes the raw little-endian bytes of the named tensor, which
// must be the one Next returns and exactly its Size.
func (w *Writer) WriteTensor(name string, data []byte) error {
	e, err := w.begin(name)
	if err != nil {
		return err
	}
	if int64(len(data)) != e.Size() {
		return fmt.Errorf("safetensors: write %q: %d bytes, want %d for %s %v", name, len(data), e.Size(), e.DType, e.Shape)
	}
	if err := w.write(name, data); err != nil {
		return err
	}
	w.next++
	return nil
}

// WriteFloat32 encodes v into the named tensor's float dtype (F32, F16,
// BF16 or F64; see EncodeFloat32) and writes it; len(v) must be its element
// count.
func (w *Writer) WriteFloat32(name string, v []float32) error {
	return writeEncoded(w, name, v, EncodeFloat32)
}

// WriteInt64 encodes v into the named tensor's integer dtype (I64, I32,
// I16, I8, U64, U32, U16, U8 or BOOL; see EncodeInt64) and writes it;
// len(v) must be its element count.
func (w *Writer) WriteInt64(name string, v []int64) error {
	return writeEncoded(w, name, v, EncodeInt64)
}

// writeEncoded encodes v chunk by chunk into the named tensor's dtype with
// encode and writes it.
func writeEncoded[T any](w *Writer, name string, v []T, encode func(dst []byte, src []T, dtype string) error) error {
	e, err := w.begin(name)
	if err != nil {
		return err
	}
	width := DTypeSize(e.DType)
	if int64(len(v))*int64(width) != e.Size() {
		return fmt.Errorf("safetensors: write %q: %d values for shape %v", name, len(v), e.Shape)
	}
	if err := encode(nil, nil, e.DType); err != nil { // the dtype, before any byte is written
		return fmt.Errorf("safetensors: write %q: %w", name, err)
	}
	for lo := 0; lo < len(v); lo += writeChunk {
		part := v[lo:min(lo+writeChunk, len(v))]
		w.buf = slices.Grow(w.buf[:0], len(part)*width)[:len(part)*width]
		if err := encode(w.buf, part, e.DType); err != nil {
			err = fmt.Errorf("safetensors: write %q: %w", name, err)
			if lo > 0 { // part of the tensor is out: the file cannot be completed
				return w.fail(err)
			}
			return err
		}
		if err := w.write(name, w.buf); err != nil {
			return err
		}
	}
	w.next++
	return nil
}

// Close flushes the data and checks that every tensor was written. For a
// writer from Create it also syncs the file and renames it into place, or,
// after any failure, removes it and leaves nothing behind.
func (w *Writer) Close() error {
	err := w.err
	if err == nil {
		if e, ok := w.Next(); ok {
			err = fmt.Errorf("safetensors: close: %d of %d tensors written, %q is next", w.next, len(w.entries), e.Name)
		} else if ferr := w.bw.Flush(); ferr != nil {
			err = w.wrapWrite("", ferr)
		}
		w.fail(err)
	}
	if w.file != nil {
		if err != nil {
			w.file.abort()
		} else if ferr := w.file.commit(); ferr != nil {
			err = w.fail(w.wrapWrite("", ferr))
		}
		w.file = nil
	}
	return err
}

// Abort gives up a file from Create: the temporary file is removed and
// nothing is left at its path. It does nothing after Close, or for a writer
// from NewWriter.
func (w *Writer) Abort() {
	w.fail(errors.New("safetensors: writer aborted"))
	if w.file != nil {
		w.file.abort()
		w.file = nil
	}
}

// wrapWrite explains a write error, naming a full disk.
func (w *Writer) wrapWrite(tensor string, err error) error {
	where := "write"
	if w.file != nil {
		where = "write " + w.file.path
	}
	if tensor != "" {
		where += fmt.Sprintf(" (tensor %q)", tensor)
	}
	if errors.Is(err, syscall.ENOSPC) {
		left := ""
		if w.file != nil {
			left = "; the partial file is removed"
		}
		return fmt.Errorf("safetensors: %s: the disk is full (the file needs %d bytes%s): %w", where, w.total, left, err)
	}
	return fmt.Errorf("safetensors: %s: %w", where, err)
}

// Create starts writing a safetensors file at path atomically: the data goes
// to a temporary file in the same folder, which Close syncs and renames to
// path. Until then an existing file at path is untouched, and a failure (a
// full disk, a cancelled fill, Abort) removes the temporary file.
func Create(path string, entries []Entry, metadata map[string]string) (*Writer, error) {
	return create(path, entries, metadata, osTemp)
}

func create(path string, entries []Entry, metadata map[string]string, open openTempFunc) (*Writer, error) {
	// Check the entries before touching the disk.
	if _, _, err := layout(entries, metadata); err != nil {
		return nil, err
	}
	af, err := newAtomicFile(path, open)
	if err != nil {
		return nil, err
	}
	w, err := newWriter(af.f, entries, metadata, af)
	if err != nil {
		af.abort()
		return nil, err
	}
	return w, nil
}

// WriteFile writes a safetensors file at path atomically (see Create):
// fill supplies each tensor's raw little-endian bytes into dst, which has
// exactly e.Size() bytes, in data order. A fill error stops the write and
// is returned wrapped.
func WriteFile(path string, entries []Entry, metadata map[string]string, fill func(e Entry, dst []byte) error) error {
	w, err := Create(path, entries, metadata)
	if err != nil {
		return err
	}
	var buf []byte
	for {
		e, ok := w.Next()
		if !ok {
			break
		}
		n := int(e.Size())
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		clear(buf)
		if err := fill(e, buf); err != nil {
			w.Abort()
			return fmt.Errorf("safetensors: write %s: tensor %q: %w", path, e.Name, err)
		}
		if err := w.WriteTensor(e.Name, buf); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// tempFile is what the atomic writer needs of an *os.File (tests inject
// failing ones).
type tempFile interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

type openTempFunc func(dir, pattern string) (tempFile, error)

func osTemp(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }

// atomicFile is a temporary file renamed to path on commit.
type atomicFile struct {
	path string
	f    tempFile
	done bool
}

func newAtomicFile(path string, open openTempFunc) (*atomicFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := open(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("safetensors: create %s: %w", path, err)
	}
	return &atomicFile{path: path, f: f}, nil
}

// commit syncs, closes and renames the file into place.
func (a *atomicFile) commit() error {
	if a.done {
		return nil
	}
	a.done = true
	if err := a.f.Sync(); err != nil {
		a.f.Close()
		os.Remove(a.f.Name())
		return err
	}
	if err := a.f.Close(); err != nil {
		os.Remove(a.f.Name())
		return err
	}
	// CreateTemp makes the file private; a checkpoint is an ordinary file.
	if err := os.Chmod(a.f.Name(), 0o644); err != nil {
		os.Remove(a.f.Name())
		return err
	}
	if err := os.Rename(a.f.Name(), a.path); err != nil {
		os.Remove(a.f.Name())
		return err
	}
	return nil
}

// abort closes and removes the temporary file.
func (a *atomicFile) abort() {
	if a.done {
		return
	}
	a.done = true
	a.f.Close()
	os.Remove(a.f.Name())
}
