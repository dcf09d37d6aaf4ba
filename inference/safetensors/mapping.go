package safetensors

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"unsafe"
)

// MinMapSize is the smallest file Open maps into memory; smaller files
// (configs, test files, small models) are read with ordinary reads, which
// cost less than setting up a mapping.
const MinMapSize = 1 << 20

// mapping is a read-only memory map of a whole file. The views File.View
// hands out point into it; it is unmapped by a cleanup once it is
// unreachable, so whoever keeps a view keeps the *mapping (the keep value
// View returns) reachable too.
type mapping struct {
	data []byte
}

// mapFile maps f (size bytes, already checked to be a regular file of that
// length) read-only. It returns nil, with no error, where mapping is not
// available (this system, or a failed mmap: the caller reads instead).
func mapFile(f *os.File, size int64) *mapping {
	if size < MinMapSize || int64(int(size)) != size {
		return nil
	}
	data, err := mmapFile(f, int(size))
	if err != nil || len(data) != int(size) {
		return nil
	}
	m := &mapping{data: data}
	runtime.AddCleanup(m, func(d []byte) { munmapFile(d) }, data)
	return m
}

// littleEndian reports whether the host stores integers little-endian, so
// that the file's little-endian float16 values can be used in place.
func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// Uint16View returns b as []uint16 without copying when the host is
// little-endian and b is 2-byte aligned; otherwise it returns a converted
// copy (ToUint16). The view aliases b.
func Uint16View(b []byte) []uint16 {
	if len(b) == 0 || len(b)%2 != 0 || !littleEndian() || uintptr(unsafe.Pointer(&b[0]))%2 != 0 {
		return ToUint16(b)
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}

// Mapped reports whether the file's data is memory-mapped (see View).
func (f *File) Mapped() bool { return f.m != nil }

// View returns the raw bytes of the named tensor without copying them
// where the file is memory-mapped (files of at least MinMapSize bytes
// opened with Open, on Unix), else a fresh copy as Bytes reads.
//
// A view is read-only: writing to it crashes the program. It stays valid
// as long as keep is reachable, whether or not the File has been closed;
// keep is nil for a copy. A holder of the view must therefore hold keep
// too (runtime.KeepAlive, or a field next to the data).
//
// The file's length was checked against every tensor's byte range when it
// was opened, so a file truncated before Open is an error, never a fault.
// A file truncated or rewritten in place while it is mapped makes reads of
// the lost pages fault (SIGBUS); files replaced by renaming a new one into
// place, as safe writers (and this package's Writer) do, are not affected.
func (f *File) View(name string) (b []byte, info Info, keep any, err error) {
	if f.m == nil {
		b, info, err = f.Bytes(name)
		return b, info, nil, err
	}
	info, ok := f.Info(name)
	if !ok {
		return nil, Info{}, nil, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if f.closed.Load() {
		return nil, info, nil, fmt.Errorf("safetensors: read %q: %w", name, os.ErrClosed)
	}
	end := info.Offset + info.Length
	if info.Offset < 0 || end > int64(len(f.m.data)) { // checked at Open; kept as a guard
		return nil, info, nil, fmt.Errorf("safetensors: read %q: %w", name, errors.Join(io.ErrUnexpectedEOF, ErrFormat))
	}
	return f.m.data[info.Offset:end:end], info, f.m, nil
}

// HalfView is Half without copying where the file is mapped (see View for
// the lifetime of the values and of keep).
func (f *File) HalfView(name string) (v []uint16, keep any, shape []int, err error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, nil, nil, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if info.DType != "F16" {
		return nil, nil, nil, fmt.Errorf("safetensors: %q is %s, not F16: %w", name, info.DType, ErrUnsupported)
	}
	b, _, keep, err := f.View(name)
	if err != nil {
		return nil, nil, nil, err
	}
	v = Uint16View(b)
	if keep != nil && len(v) > 0 && unsafe.SliceData(v) != (*uint16)(unsafe.Pointer(unsafe.SliceData(b))) {
		keep = nil // converted into a copy: nothing to keep
	}
	return v, keep, info.Shape, nil
}
