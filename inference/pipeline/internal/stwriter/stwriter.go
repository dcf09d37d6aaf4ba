// Package stwriter writes safetensors files
// (https://github.com/huggingface/safetensors) tensor by tensor, so a
// multi-gigabyte checkpoint never sits in memory whole: an 8-byte
// little-endian header length N, N bytes of JSON (padded with spaces to a
// multiple of 8) giving each tensor's dtype, shape and byte range, then the
// raw little-endian data, tensors contiguous in name order.
//
// It serves the pipeline's tests and benchmarks (merged golden files,
// random-weight SD1.5-shaped checkpoints); the reader is package
// inference/safetensors.
package stwriter

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Entry is one tensor to write.
type Entry struct {
	Name  string
	DType string // "F32", "F16", "I64", ... (safetensors dtype names)
	Shape []int
}

// Size is the entry's data size in bytes (0 for an unknown dtype).
func (e Entry) Size() int64 {
	return int64(tensor.Numel(e.Shape)) * int64(safetensors.DTypeSize(e.DType))
}

// Fill writes an entry's raw little-endian bytes into dst, which has
// exactly e.Size() bytes.
type Fill func(e Entry, dst []byte) error

// headerEntry is one tensor's JSON header record.
type headerEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// Write writes a safetensors file to w: the header of entries (sorted by
// name; meta may be nil), then each tensor's bytes as fill supplies them,
// in name order.
func Write(w io.Writer, entries []Entry, meta map[string]string, fill Fill) error {
	es := append([]Entry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off, maxSize int64
	for i, e := range es {
		if i > 0 && es[i-1].Name == e.Name {
			return fmt.Errorf("stwriter: tensor %q listed twice", e.Name)
		}
		if e.Name == "__metadata__" {
			return fmt.Errorf("stwriter: %q is reserved", e.Name)
		}
		if safetensors.DTypeSize(e.DType) == 0 {
			return fmt.Errorf("stwriter: tensor %q: unknown dtype %q", e.Name, e.DType)
		}
		shape := e.Shape
		if shape == nil {
			shape = []int{} // a scalar is "shape": []
		}
		for _, d := range shape {
			if d < 0 {
				return fmt.Errorf("stwriter: tensor %q: negative dimension in %v", e.Name, e.Shape)
			}
		}
		header[e.Name] = headerEntry{DType: e.DType, Shape: shape, Offsets: [2]int64{off, off + e.Size()}}
		off += e.Size()
		maxSize = max(maxSize, e.Size())
	}
	js, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("stwriter: header: %w", err)
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(js)))); err != nil {
		return fmt.Errorf("stwriter: %w", err)
	}
	if _, err := bw.Write(js); err != nil {
		return fmt.Errorf("stwriter: %w", err)
	}
	buf := make([]byte, 0, min(maxSize, 64<<20))
	for _, e := range es {
		n := int(e.Size())
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if err := fill(e, buf); err != nil {
			return fmt.Errorf("stwriter: tensor %q: %w", e.Name, err)
		}
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("stwriter: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("stwriter: %w", err)
	}
	return nil
}

// WriteFile writes a safetensors file at path (see Write). On an error the
// partial file is removed.
func WriteFile(path string, entries []Entry, meta map[string]string, fill Fill) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("stwriter: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("stwriter: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	return Write(f, entries, meta, fill)
}

// PutFloat32 encodes v as little-endian float32 into dst (4*len(v) bytes).
func PutFloat32(dst []byte, v []float32) {
	for i, x := range v {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
}

// PutHalf encodes v as little-endian IEEE binary16 into dst (2*len(v)
// bytes), rounding to nearest even (see Half).
func PutHalf(dst []byte, v []float32) {
	for i, x := range v {
		binary.LittleEndian.PutUint16(dst[2*i:], Half(x))
	}
}

// Half converts f to IEEE 754 binary16, rounding to nearest, ties to even,
// as torch's .half() does: magnitudes past the largest half (65504, after
// rounding) become infinity, tiny ones become subnormals or zero, NaN stays
// a (quiet) NaN.
func Half(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// subnormal half: value = M * 2^(exp-150) = m * 2^-24 with
		// m = M >> (14 - e), M the 24-bit significand
		shift := uint(14 - e)
		if shift > 24 {
			return sign
		}
		return sign | uint16(roundShift(man|0x800000, shift))
	}
	// normal: the carry of a rounded-up mantissa moves into the exponent
	return sign + uint16(e)<<10 + uint16(roundShift(man, 13))
}

// roundShift is v >> s rounded to nearest, ties to even (1 <= s <= 24).
func roundShift(v uint32, s uint) uint32 {
	q, rem, half := v>>s, v&(1<<s-1), uint32(1)<<(s-1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}
