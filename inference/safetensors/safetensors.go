// Package safetensors reads and writes the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON describing each tensor's dtype, shape and
// byte range (padded with spaces), then the raw little-endian data.
//
// The reader never trusts the header: the header must be a JSON object, every
// dtype known, every shape consistent with its byte range, and the byte
// ranges must tile the data section exactly (no overlap, no hole, nothing past
// the end), as the reference implementation requires. Only the header is read
// by Open; tensor data is read on demand, so opening a multi-gigabyte file
// costs one small read. Every allocation is bounded by the file size. On Unix,
// Open maps files of MinMapSize bytes or more into memory, and View and
// HalfView lend tensors without copying them (see View for their lifetime);
// elsewhere, and for small files, tensors are read through an io.ReaderAt.
//
// Writer streams a file tensor by tensor, with every byte range fixed in
// the header up front; Create and WriteFile write files atomically (a
// temporary file renamed into place), so a failure leaves no partial file.
//
// Errors start with "safetensors:"; malformed input wraps ErrFormat, valid
// input this package cannot handle wraps ErrUnsupported.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime"
	"sort"
	"sync/atomic"

	"github.com/perfusion-studio/perfusion/inference/internal/regfile"
)

// MaxHeaderSize bounds the JSON header (real checkpoints use well under 1 MiB).
const MaxHeaderSize = 100 << 20

// MaxTensors bounds the tensors of one model file, here and in the .ckpt
// reader. A Stable Diffusion 1.x checkpoint holds about 1,200 (about 1,900
// with an EMA copy of the UNet); the bound leaves ample room for any SD
// file while keeping a hostile header from making millions of entries.
const MaxTensors = 1 << 14

// ErrFormat is wrapped by every error about malformed input.
var ErrFormat = errors.New("not a valid safetensors file")

// ErrUnsupported is wrapped by errors about valid input this package cannot
// handle (a dtype it cannot convert).
var ErrUnsupported = errors.New("unsupported safetensors content")

// Info describes one tensor.
type Info struct {
	Name   string
	DType  string // "F32", "F16", "BF16", "F64", "I64", "I32", "U8", ...
	Shape  []int
	Offset int64 // absolute byte offset in the file
	Length int64 // bytes
}

// Numel is the number of elements.
func (i Info) Numel() int {
	n := 1
	for _, d := range i.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file. Close it when done. Its methods are safe
// for concurrent use.
type File struct {
	r        io.ReaderAt
	closer   io.Closer
	tensors  map[string]Info
	names    []string
	Metadata map[string]string
	m        *mapping    // the whole file mapped, or nil (see View)
	closed   atomic.Bool // Close was called
}

// Open reads and validates the header of the file at path.
func Open(path string) (*File, error) {
	f, size, err := regfile.Open(path)
	if err != nil {
		if _, ok := err.(*fs.PathError); ok {
			return nil, fmt.Errorf("safetensors: %w", err)
		}
		return nil, fmt.Errorf("safetensors: %w: %w", err, ErrFormat)
	}
	sf, err := OpenFile(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sf, nil
}

// OpenFile reads and validates the header of f, an open regular file of
// size bytes, and maps it into memory where Open would. The File owns f
// from then on (its Close closes f); on an error f is left open.
func OpenFile(f *os.File, size int64) (*File, error) {
	sf, err := NewReader(f, size)
	if err != nil {
		return nil, err
	}
	sf.closer = f
	sf.m = mapFile(f, size) // after NewReader checked every byte range against size
	return sf, nil
}

// NewReader reads and validates the header from r, whose total size is size.
// Tensor data is read from r later, on demand.
func NewReader(r io.ReaderAt, size int64) (*File, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("safetensors: file of %d bytes is too short (truncated, or not safetensors): %w", size, ErrFormat)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n < 2 || n > MaxHeaderSize || n > uint64(size-8) {
		head := make([]byte, min(size, SniffSize))
		k, _ := r.ReadAt(head, 0)
		if what := Sniff(head[:k]); what != "" {
			return nil, fmt.Errorf("safetensors: this is %s, not a safetensors file: %w", what, ErrFormat)
		}
		if n >= 2 && n <= MaxHeaderSize {
			return nil, fmt.Errorf("safetensors: header length %d does not fit a file of %d bytes (truncated download, or not a safetensors file): %w", n, size, ErrFormat)
		}
		return nil, fmt.Errorf("safetensors: the file starts with %s, which is no safetensors header length (not a safetensors file, or damaged): %w",
			Quote(lenBuf[:], 8), ErrFormat)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: read header: %w", err)
	}
	if hdr[0] != '{' {
		return nil, fmt.Errorf("safetensors: header does not start with '{' (not a safetensors file): %w", ErrFormat)
	}
	if err := checkHeader(hdr); err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimRight(hdr, " ")))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("safetensors: header is not a JSON object: %v: %w", err, ErrFormat)
	}
	if dec.More() {
		return nil, fmt.Errorf("safetensors: trailing data after the JSON header: %w", ErrFormat)
	}
	dataStart := int64(8 + n)
	sf := &File{r: r, tensors: make(map[string]Info, len(raw))}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: __metadata__ must map strings to strings: %v: %w", err, ErrFormat)
			}
			continue
		}
		info, err := parseEntry(name, msg)
		if err != nil {
			return nil, err
		}
		info.Offset += dataStart
		sf.tensors[name] = info
		sf.names = append(sf.names, name)
	}
	if err := checkLayout(sf.tensors, dataStart, size); err != nil {
		return nil, err
	}
	sort.Strings(sf.names)
	return sf, nil
}

// parseEntry decodes one header entry; Offset is relative to the data start.
func parseEntry(name string, msg json.RawMessage) (Info, error) {
	var e struct {
		DType   *string  `json:"dtype"`
		Shape   *[]int64 `json:"shape"`
		Offsets []int64  `json:"data_offsets"`
	}
	if err := json.Unmarshal(msg, &e); err != nil {
		return Info{}, fmt.Errorf("safetensors: tensor %q: %v: %w", name, err, ErrFormat)
	}
	if e.DType == nil || e.Shape == nil || e.Offsets == nil {
		return Info{}, fmt.Errorf("safetensors: tensor %q: entry needs dtype, shape and data_offsets: %w", name, ErrFormat)
	}
	width := DTypeSize(*e.DType)
	if width == 0 {
		return Info{}, fmt.Errorf("safetensors: tensor %q: unknown dtype %q: %w", name, *e.DType, ErrUnsupported)
	}
	if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] {
		return Info{}, fmt.Errorf("safetensors: tensor %q: bad data_offsets %v: %w", name, e.Offsets, ErrFormat)
	}
	length := e.Offsets[1] - e.Offsets[0]
	shape := make([]int, len(*e.Shape))
	prod, zero := int64(1), false // product of the non-zero dims
	for i, d := range *e.Shape {
		if d < 0 || (d > 0 && prod > math.MaxInt64/8/d) {
			return Info{}, fmt.Errorf("safetensors: tensor %q: bad shape %v: %w", name, *e.Shape, ErrFormat)
		}
		shape[i] = int(d)
		if d == 0 {
			zero = true
		} else {
			prod *= d
		}
	}
	numel := prod
	if zero {
		numel = 0
	}
	if numel*int64(width) != length {
		return Info{}, fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes, its data_offsets give %d (header corrupt): %w",
			name, *e.Shape, *e.DType, numel*int64(width), length, ErrFormat)
	}
	return Info{Name: name, DType: *e.DType, Shape: shape, Offset: e.Offsets[0], Length: length}, nil
}

// checkLayout requires the tensors' byte ranges to tile [dataStart, size)
// exactly, in some order. Like the reference, it orders ranges by (start,
// end), so empty tensors may sit at any offset of the tiling.
func checkLayout(tensors map[string]Info, dataStart, size int64) error {
	infos := make([]Info, 0, len(tensors))
	for _, i := range tensors {
		infos = append(infos, i)
	}
	sort.Slice(infos, func(a, b int) bool {
		if infos[a].Offset != infos[b].Offset {
			return infos[a].Offset < infos[b].Offset
		}
		if infos[a].Length != infos[b].Length { // an empty tensor before the one starting at its offset
			return infos[a].Length < infos[b].Length
		}
		return infos[a].Name < infos[b].Name
	})
	end := dataStart
	for _, i := range infos {
		switch {
		case i.Offset < end:
			return fmt.Errorf("safetensors: tensor %q: bytes [%d, %d) overlap another tensor (header corrupt): %w",
				i.Name, i.Offset-dataStart, i.Offset-dataStart+i.Length, ErrFormat)
		case i.Offset > end:
			return fmt.Errorf("safetensors: %d unused bytes before tensor %q (header corrupt): %w", i.Offset-end, i.Name, ErrFormat)
		}
		end = i.Offset + i.Length
		if end > size {
			return fmt.Errorf("safetensors: tensor %q ends at byte %d but the file has %d (file truncated: download it again): %w",
				i.Name, end, size, ErrFormat)
		}
	}
	if end != size {
		return fmt.Errorf("safetensors: %d bytes after the last tensor (header corrupt or file damaged): %w", size-end, ErrFormat)
	}
	return nil
}

// Close releases the file. Views lent by View and HalfView stay valid (see
// View); reads after Close fail.
func (f *File) Close() error {
	if f.closed.Swap(true) || f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Names lists the tensor names in sorted order.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Info describes the named tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.tensors[name]
	i.Shape = append([]int(nil), i.Shape...)
	return i, ok
}

// Section returns a reader over the raw bytes of the named tensor, for
// streaming without holding the whole tensor in memory.
func (f *File) Section(name string) (*io.SectionReader, Info, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, Info{}, fmt.Errorf("safetensors: no tensor %q", name)
	}
	return io.NewSectionReader(f.r, info.Offset, info.Length), info, nil
}

// Bytes reads the raw bytes of the named tensor.
func (f *File) Bytes(name string) ([]byte, Info, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, Info{}, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if f.m != nil {
		v, _, keep, err := f.View(name)
		if err != nil {
			return nil, info, err
		}
		out := append([]byte(nil), v...)
		runtime.KeepAlive(keep)
		return out, info, nil
	}
	buf := make([]byte, info.Length)
	if info.Length == 0 { // some ReaderAts report io.EOF for empty reads at the end
		return buf, info, nil
	}
	if _, err := f.r.ReadAt(buf, info.Offset); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("file is shorter than its header says (truncated): %w", ErrFormat)
		}
		return nil, info, fmt.Errorf("safetensors: read %q: %w", name, err)
	}
	return buf, info, nil
}

// Float32 reads the named tensor converted to float32 (from any float,
// integer or bool dtype), with its shape.
func (f *File) Float32(name string) ([]float32, []int, error) {
	b, info, keep, err := f.View(name)
	if err != nil {
		return nil, nil, err
	}
	out, err := ToFloat32(b, info.DType) // a new slice: the view is not kept
	runtime.KeepAlive(keep)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %q: %w", name, err)
	}
	return out, info.Shape, nil
}

// Half reads an F16 tensor as raw IEEE 754 binary16 values (no conversion),
// for memory-compact weights. Other dtypes are an error wrapping
// ErrUnsupported: use Float32 for them.
func (f *File) Half(name string) ([]uint16, []int, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, nil, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if info.DType != "F16" {
		return nil, nil, fmt.Errorf("safetensors: %q is %s, not F16: %w", name, info.DType, ErrUnsupported)
	}
	b, _, keep, err := f.View(name)
	if err != nil {
		return nil, nil, err
	}
	out := ToUint16(b) // a copy
	runtime.KeepAlive(keep)
	return out, info.Shape, nil
}

// Float64 reads the named tensor converted to float64.
func (f *File) Float64(name string) ([]float64, []int, error) {
	b, info, keep, err := f.View(name)
	if err != nil {
		return nil, nil, err
	}
	out, err := ToFloat64(b, info.DType)
	runtime.KeepAlive(keep)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %q: %w", name, err)
	}
	return out, info.Shape, nil
}

// Int64 reads an integer or bool tensor as int64.
func (f *File) Int64(name string) ([]int64, []int, error) {
	b, info, keep, err := f.View(name)
	if err != nil {
		return nil, nil, err
	}
	out, err := ToInt64(b, info.DType)
	runtime.KeepAlive(keep)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %q: %w", name, err)
	}
	return out, info.Shape, nil
}
