package ckpt

import (
	"archive/zip"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"sync"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// Compressed storages: torch.save stores them uncompressed, and float
// weights barely compress, so a member that inflates far beyond its
// compressed size is damaged or crafted to exhaust memory (a few MB that
// would inflate to gigabytes). Highly regular small tensors (position ids,
// zero biases) fit in the slack.
const (
	maxInflateRatio = 16      // inflated bytes per compressed byte
	inflateSlack    = 1 << 20 // bytes allowed beyond the ratio per member
)

// storage is one archive member X/data/<key>: numel values of dtype.
type storage struct {
	key    string
	dtype  string
	numel  int64
	width  int64
	r      io.ReaderAt // the file, for stored members
	base   int64       // offset of the member's bytes in the file, or -1 if compressed
	member *zip.File

	once sync.Once // verifies the member's CRC-32 once
	err  error     // the verification's result
}

// openStorage checks that a referenced storage exists, is big enough, and,
// when compressed, does not inflate beyond what its values need or what
// real weights compress to.
func openStorage(r io.ReaderAt, size int64, members map[string]*zip.File, prefix string, ref *storageRef) (*storage, error) {
	m, ok := members[prefix+"data/"+ref.key]
	if !ok {
		return nil, fmt.Errorf("ckpt: storage %q is missing from the archive (damaged file): %w", ref.key, ErrFormat)
	}
	st := &storage{key: ref.key, dtype: ref.dtype, numel: ref.numel, width: int64(safetensors.DTypeSize(ref.dtype)), r: r, base: -1, member: m}
	if st.numel > math.MaxInt64/16 || uint64(st.numel*st.width) > m.UncompressedSize64 {
		return nil, fmt.Errorf("ckpt: storage %q holds %d bytes, too few for %d %s values (damaged file): %w",
			ref.key, m.UncompressedSize64, ref.numel, ref.dtype, ErrFormat)
	}
	if m.Method == zip.Store {
		off, err := m.DataOffset()
		if err != nil || off < 0 || m.CompressedSize64 != m.UncompressedSize64 || uint64(off)+m.UncompressedSize64 > uint64(size) {
			return nil, fmt.Errorf("ckpt: storage %q lies outside the file (truncated download?): %w", ref.key, ErrFormat)
		}
		st.base = off
		return st, nil
	}
	if need := uint64(st.numel * st.width); m.UncompressedSize64 > need {
		return nil, fmt.Errorf("ckpt: compressed storage %q inflates to %d bytes, its %d %s values need %d (damaged or crafted file): %w",
			ref.key, m.UncompressedSize64, ref.numel, ref.dtype, need, ErrFormat)
	}
	if m.CompressedSize64 > uint64(size) || m.UncompressedSize64 > maxInflateRatio*m.CompressedSize64+inflateSlack {
		return nil, fmt.Errorf("ckpt: compressed storage %q would inflate from %d to %d bytes, more than model weights compress "+
			"(damaged or crafted file; re-save it with torch.save, which stores weights uncompressed): %w",
			ref.key, m.CompressedSize64, m.UncompressedSize64, ErrUnsupported)
	}
	return st, nil
}

// verify checks the member's CRC-32 once, reading it through: the zip
// reader compares the checksum when a member is read to its end.
func (s *storage) verify() error {
	s.once.Do(func() {
		rc, err := s.member.Open()
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil {
			s.err = fmt.Errorf("ckpt: storage %q is damaged (%v): download the file again: %w", s.key, err, ErrFormat)
		}
	})
	return s.err
}

// checkSum compares a whole member's bytes with its CRC-32, sparing a
// second read when a tensor spans its whole storage (the usual layout).
func (s *storage) checkSum(buf []byte) error {
	s.once.Do(func() {
		if got := crc32.ChecksumIEEE(buf); got != s.member.CRC32 {
			s.err = fmt.Errorf("ckpt: storage %q is damaged (CRC-32 %08x, the archive says %08x): download the file again: %w",
				s.key, got, s.member.CRC32, ErrFormat)
		}
	})
	return s.err
}

// read returns n bytes of the storage starting at byte from, after
// checking the member's CRC-32.
func (s *storage) read(from, n int64) ([]byte, error) {
	whole := from == 0 && uint64(n) == s.member.UncompressedSize64 && s.member.CRC32 != 0
	if !whole {
		if err := s.verify(); err != nil {
			return nil, err
		}
	}
	var buf []byte
	if s.base >= 0 {
		buf = make([]byte, n)
		if _, err := s.r.ReadAt(buf, s.base+from); err != nil {
			return nil, fmt.Errorf("ckpt: read storage %q: %w", s.key, err)
		}
	} else {
		rc, err := s.member.Open()
		if err != nil {
			return nil, fmt.Errorf("ckpt: open storage %q: %v: %w", s.key, err, ErrFormat)
		}
		defer rc.Close()
		if _, err = io.CopyN(io.Discard, rc, from); err == nil {
			buf, err = io.ReadAll(io.LimitReader(rc, n)) // grows with the data actually present
		}
		if err != nil || int64(len(buf)) != n {
			return nil, fmt.Errorf("ckpt: storage %q is damaged (%d of %d bytes inflated: %v): download the file again: %w", s.key, len(buf), n, err, ErrFormat)
		}
	}
	if whole {
		if err := s.checkSum(buf); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// Tensor is one tensor of a checkpoint: a strided view of a storage. Its
// data is read by Bytes.
type Tensor struct {
	Name    string
	DType   string  // safetensors dtype name: "F32", "F16", "BF16", "I64", ...
	Shape   []int   // dimensions
	Stride  []int64 // in elements
	Offset  int64   // first element in the storage
	Storage string  // storage key (archive member data/<key>)

	numel  int64 // product of Shape
	extent int64 // storage elements spanned from Offset
	st     *storage
}

// newTensor validates a rebuilt tensor against its storage.
func newTensor(name string, ref *tensorRef, st *storage) (*Tensor, error) {
	t := &Tensor{Name: name, DType: st.dtype, Shape: ref.shape, Stride: ref.stride, Offset: ref.offset, Storage: st.key, st: st}
	t.numel, t.extent = 1, 1
	for _, d := range ref.shape {
		if d == 0 {
			t.numel, t.extent = 0, 0
		}
	}
	for i, d := range ref.shape {
		if t.numel == 0 {
			break
		}
		if int64(d) > st.numel || t.numel > st.numel/int64(d) {
			return nil, fmt.Errorf("ckpt: tensor %q of shape %v is bigger than its storage of %d values: %w", name, ref.shape, st.numel, ErrUnsupported)
		}
		t.numel *= int64(d)
		if ref.stride[i] > 0 && int64(d-1) > (st.numel-t.extent)/ref.stride[i] {
			return nil, fmt.Errorf("ckpt: tensor %q (shape %v, stride %v) reaches past its storage of %d values (damaged file): %w",
				name, ref.shape, ref.stride, st.numel, ErrFormat)
		}
		t.extent += int64(d-1) * ref.stride[i] // <= st.numel by the check above
	}
	if t.Offset > st.numel-t.extent {
		return nil, fmt.Errorf("ckpt: tensor %q (offset %d, shape %v) reaches past its storage of %d values (damaged file): %w",
			name, ref.offset, ref.shape, st.numel, ErrFormat)
	}
	return t, nil
}

// Numel is the number of elements.
func (t *Tensor) Numel() int64 { return t.numel }

// Contiguous reports whether the tensor is stored in row-major order
// without gaps, so Bytes reads it in one piece.
func (t *Tensor) Contiguous() bool {
	want := int64(1)
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] != 1 && t.Stride[i] != want {
			return false
		}
		want *= int64(t.Shape[i])
	}
	return true
}

// Bytes reads the tensor as contiguous row-major little-endian bytes,
// gathering strided views.
func (t *Tensor) Bytes() ([]byte, error) {
	w := t.st.width
	if t.numel == 0 {
		return []byte{}, nil
	}
	if t.Contiguous() {
		return t.st.read(t.Offset*w, t.numel*w)
	}
	span, err := t.st.read(t.Offset*w, t.extent*w)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, t.numel*w)
	idx := make([]int, len(t.Shape)) // row-major counter
	for {
		var at int64
		for i, v := range idx {
			at += int64(v) * t.Stride[i]
		}
		out = append(out, span[at*w:(at+1)*w]...)
		i := len(idx) - 1
		for ; i >= 0; i-- {
			if idx[i]++; idx[i] < t.Shape[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return out, nil
		}
	}
}
