// Package safetensors reads the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON describing each tensor's dtype, shape and
// byte range, then the raw little-endian data.
//
// The reader never trusts the header: offsets, sizes and shapes are checked
// against the file before any tensor is read.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// MaxHeaderSize bounds the JSON header (real checkpoints use well under 1 MiB).
const MaxHeaderSize = 100 << 20

// ErrFormat is wrapped by every error about malformed input.
var ErrFormat = errors.New("not a valid safetensors file")

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

// File is an open safetensors file. Close it when done.
type File struct {
	r        io.ReaderAt
	closer   io.Closer
	tensors  map[string]Info
	names    []string
	Metadata map[string]string
}

// Open reads and validates the header of the file at path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	sf, err := NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sf.closer = f
	return sf, nil
}

// NewReader reads and validates the header from r, whose total size is size.
func NewReader(r io.ReaderAt, size int64) (*File, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("safetensors: file of %d bytes is too short: %w", size, ErrFormat)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n < 2 || n > MaxHeaderSize || int64(n) > size-8 {
		return nil, fmt.Errorf("safetensors: header length %d does not fit a file of %d bytes (truncated or not safetensors): %w", n, size, ErrFormat)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: read header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("safetensors: header is not JSON: %v: %w", err, ErrFormat)
	}
	dataStart := int64(8 + n)
	dataLen := size - dataStart
	sf := &File{r: r, tensors: make(map[string]Info, len(raw))}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: bad __metadata__: %v: %w", err, ErrFormat)
			}
			continue
		}
		var e struct {
			DType   string  `json:"dtype"`
			Shape   []int   `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %v: %w", name, err, ErrFormat)
		}
		width := DTypeSize(e.DType)
		if width == 0 {
			return nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q: %w", name, e.DType, ErrFormat)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || e.Offsets[1] > dataLen {
			return nil, fmt.Errorf("safetensors: tensor %q: byte range %v lies outside the %d data bytes (file truncated or header corrupt): %w", name, e.Offsets, dataLen, ErrFormat)
		}
		numel := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && numel > math.MaxInt64/int64(d)/8) {
				return nil, fmt.Errorf("safetensors: tensor %q: bad shape %v: %w", name, e.Shape, ErrFormat)
			}
			numel *= int64(d)
		}
		if numel*int64(width) != e.Offsets[1]-e.Offsets[0] {
			return nil, fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes, header says %d: %w",
				name, e.Shape, e.DType, numel*int64(width), e.Offsets[1]-e.Offsets[0], ErrFormat)
		}
		sf.tensors[name] = Info{Name: name, DType: e.DType, Shape: e.Shape,
			Offset: dataStart + e.Offsets[0], Length: e.Offsets[1] - e.Offsets[0]}
		sf.names = append(sf.names, name)
	}
	sort.Strings(sf.names)
	return sf, nil
}

// Close releases the file.
func (f *File) Close() error {
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// Names lists the tensor names in sorted order.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Info describes the named tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.tensors[name]
	return i, ok
}

// Bytes reads the raw bytes of the named tensor.
func (f *File) Bytes(name string) ([]byte, Info, error) {
	info, ok := f.tensors[name]
	if !ok {
		return nil, Info{}, fmt.Errorf("safetensors: no tensor %q", name)
	}
	buf := make([]byte, info.Length)
	if _, err := f.r.ReadAt(buf, info.Offset); err != nil {
		return nil, info, fmt.Errorf("safetensors: read %q: %w", name, err)
	}
	return buf, info, nil
}

// Float32 reads the named tensor converted to float32 (from F32, F16, BF16,
// F64, I64, I32, U8 or BOOL), with its shape.
func (f *File) Float32(name string) ([]float32, []int, error) {
	b, info, err := f.Bytes(name)
	if err != nil {
		return nil, nil, err
	}
	out, err := ToFloat32(b, info.DType)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %q: %w", name, err)
	}
	return out, info.Shape, nil
}

// Float64 reads the named tensor converted to float64.
func (f *File) Float64(name string) ([]float64, []int, error) {
	b, info, err := f.Bytes(name)
	if err != nil {
		return nil, nil, err
	}
	if info.DType == "F64" {
		out := make([]float64, len(b)/8)
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return out, info.Shape, nil
	}
	if info.DType == "I64" {
		out := make([]float64, len(b)/8)
		for i := range out {
			out[i] = float64(int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
		return out, info.Shape, nil
	}
	f32, err := ToFloat32(b, info.DType)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %q: %w", name, err)
	}
	out := make([]float64, len(f32))
	for i, v := range f32 {
		out[i] = float64(v)
	}
	return out, info.Shape, nil
}

// Int64 reads an integer tensor (I64, I32, U8) as int64.
func (f *File) Int64(name string) ([]int64, []int, error) {
	b, info, err := f.Bytes(name)
	if err != nil {
		return nil, nil, err
	}
	var out []int64
	switch info.DType {
	case "I64":
		out = make([]int64, len(b)/8)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
	case "I32":
		out = make([]int64, len(b)/4)
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case "U8":
		out = make([]int64, len(b))
		for i := range out {
			out[i] = int64(b[i])
		}
	default:
		return nil, nil, fmt.Errorf("safetensors: %q has dtype %s, not an integer type", name, info.DType)
	}
	return out, info.Shape, nil
}

// DTypeSize is the width in bytes of a dtype, or 0 if unknown.
func DTypeSize(dtype string) int {
	switch dtype {
	case "F64", "I64", "U64":
		return 8
	case "F32", "I32", "U32":
		return 4
	case "F16", "BF16", "I16", "U16":
		return 2
	case "U8", "I8", "BOOL", "F8_E4M3", "F8_E5M2":
		return 1
	}
	return 0
}

// ToFloat32 converts little-endian raw values of dtype to float32.
func ToFloat32(b []byte, dtype string) ([]float32, error) {
	switch dtype {
	case "F32":
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out, nil
	case "F16":
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return out, nil
	case "BF16":
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
		return out, nil
	case "F64":
		out := make([]float32, len(b)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
		return out, nil
	case "I64":
		out := make([]float32, len(b)/8)
		for i := range out {
			out[i] = float32(int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
		return out, nil
	case "I32":
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = float32(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return out, nil
	case "U8", "BOOL":
		out := make([]float32, len(b))
		for i := range out {
			out[i] = float32(b[i])
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot convert dtype %s to float32", dtype)
}

// HalfToFloat32 converts an IEEE 754 binary16 value to float32.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		man &= 0x3ff
		return math.Float32frombits(sign | e<<23 | man<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}
