// Package ckpt reads the tensors of PyTorch checkpoint files (.ckpt, .pt,
// .bin) without running any code.
//
// Since PyTorch 1.6, torch.save writes a zip archive
// (https://pytorch.org/docs/stable/notes/serialization.html): X/data.pkl is a
// pickle of the saved object whose tensors refer, through persistent ids
// ('storage', torch.XxxStorage, key, location, numel), to raw little-endian
// storages X/data/<key>; X/version and X/byteorder may follow. A pickle can
// name any Python global and call it, so this package unpickles with an
// allow-list: the tensor rebuild functions, the storage classes,
// collections.OrderedDict and a few inert metadata types that real Stable
// Diffusion checkpoints carry (see inertGlobals). Any other global is refused
// with an error naming it, and nothing is ever called: "calls" of allowed
// globals are Go functions that only record tensor layouts.
//
// Opening reads the zip directory and data.pkl only; tensor data is read on
// demand through an io.ReaderAt (stored zip members, as torch writes them,
// are read in place; compressed ones are decompressed on demand). Every
// member's CRC-32 is checked before its data is used. Allocations are
// bounded by the file size, the limits in scan.go, safetensors.MaxTensors
// tensors, and the inflation bound of compressed storages (tensor.go).
//
// The saved object must be a dict of tensors, or a dict whose "state_dict"
// entry is one (PyTorch Lightning checkpoints). Legacy (pre-1.6, non-zip)
// files are refused with ErrUnsupported.
//
// Errors start with "ckpt:"; malformed input wraps ErrFormat, valid input
// this package cannot handle (or refuses) wraps ErrUnsupported.
package ckpt

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/types"
	"github.com/perfusion-studio/perfusion/inference/internal/regfile"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// ErrFormat is wrapped by every error about malformed input.
var ErrFormat = errors.New("not a valid PyTorch checkpoint")

// ErrUnsupported is wrapped by errors about input this package does not
// handle, including pickles that name globals outside the allow-list.
var ErrUnsupported = errors.New("unsupported PyTorch checkpoint content")

// File is an opened checkpoint. Its methods are safe for concurrent use.
type File struct {
	closer  io.Closer
	tensors map[string]*Tensor
	names   []string
}

// Open opens the checkpoint at path.
func Open(path string) (*File, error) {
	f, size, err := regfile.Open(path)
	if err != nil {
		if _, ok := err.(*fs.PathError); ok {
			return nil, fmt.Errorf("ckpt: %w", err)
		}
		return nil, fmt.Errorf("ckpt: %w: %w", err, ErrFormat)
	}
	cf, err := NewReader(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cf.closer = f
	return cf, nil
}

// NewReader reads the checkpoint from r, whose total size is size.
func NewReader(r io.ReaderAt, size int64) (*File, error) {
	head := make([]byte, 512)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	switch {
	case len(head) < 4:
		return nil, fmt.Errorf("ckpt: file of %d bytes is too short (truncated, or not a checkpoint): %w", size, ErrFormat)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
	case (head[0] == 0x80 && (len(head) < 9 || head[8] != '{')) || (len(head) >= 262 && string(head[257:262]) == "ustar"):
		// A bare pickle (torch.save before 1.6 wrote its magic number first:
		// \x80\x02\x8a\x0a...) or a tar; a safetensors header can start
		// with 0x80 too, but then has '{' at byte 8.
		return nil, fmt.Errorf("ckpt: legacy PyTorch serialization (saved before PyTorch 1.6) is not supported: "+
			"re-save it with a recent torch or convert it to .safetensors: %w", ErrUnsupported)
	default:
		what := "not a PyTorch zip checkpoint"
		if s := safetensors.Sniff(head); s != "" {
			what = "this is " + s + ", not a PyTorch checkpoint"
		}
		return nil, fmt.Errorf("ckpt: %s: %w", what, ErrFormat)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("ckpt: damaged zip archive (truncated download?): %v: %w", err, ErrFormat)
	}
	members := make(map[string]*zip.File, len(zr.File))
	var pkl []string
	for _, m := range zr.File {
		members[m.Name] = m
		if strings.Count(m.Name, "/") == 1 && strings.HasSuffix(m.Name, "/data.pkl") {
			pkl = append(pkl, m.Name)
		}
	}
	if len(pkl) != 1 {
		return nil, fmt.Errorf("ckpt: zip has %d top-level */data.pkl members, want 1 (not a PyTorch checkpoint): %w", len(pkl), ErrFormat)
	}
	prefix := strings.TrimSuffix(pkl[0], "data.pkl")
	if bo, ok := members[prefix+"byteorder"]; ok {
		b, err := readMember(bo, 16)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, fmt.Errorf("ckpt: byte order %q is not supported (little-endian only): %w", s, ErrUnsupported)
		}
	}
	data, err := readMember(members[pkl[0]], maxPickleSize)
	if err != nil {
		return nil, err
	}
	obj, err := unpickle(data)
	if err != nil {
		return nil, err
	}
	refs, err := stateDict(obj)
	if err != nil {
		return nil, err
	}
	f := &File{tensors: make(map[string]*Tensor, len(refs))}
	stores := map[string]*storage{}
	for name, ref := range refs {
		st, ok := stores[ref.storage.key]
		if !ok {
			if st, err = openStorage(r, size, members, prefix, ref.storage); err != nil {
				return nil, err
			}
			stores[ref.storage.key] = st
		}
		t, err := newTensor(name, ref, st)
		if err != nil {
			return nil, err
		}
		f.tensors[name] = t
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f, nil
}

// readMember reads a whole zip member of at most limit bytes.
func readMember(m *zip.File, limit int64) ([]byte, error) {
	if m.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("ckpt: %s has %d bytes, more than the %d allowed: %w", m.Name, m.UncompressedSize64, limit, ErrUnsupported)
	}
	rc, err := m.Open()
	if err != nil {
		return nil, fmt.Errorf("ckpt: open %s: %v: %w", m.Name, err, ErrFormat)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil || int64(len(b)) > limit {
		return nil, fmt.Errorf("ckpt: read %s: %v (damaged archive): %w", m.Name, err, ErrFormat)
	}
	return b, nil
}

// stateDict finds the tensors of the saved object: a dict of tensors, or
// the dict under its "state_dict" key. Other values (epoch, optimizer state,
// callbacks) are ignored.
func stateDict(obj interface{}) (map[string]*tensorRef, error) {
	items, ok := dictItems(obj)
	if !ok {
		return nil, fmt.Errorf("ckpt: the checkpoint holds %s, not a dict of tensors: %w", pyType(obj), ErrFormat)
	}
	for _, kv := range items {
		if kv[0] == "state_dict" {
			if inner, ok := dictItems(kv[1]); ok {
				items = inner
			}
		}
	}
	if len(items) > safetensors.MaxTensors {
		return nil, fmt.Errorf("ckpt: the state dict has %d entries, more than the %d a model file may hold (Stable Diffusion 1.x has about 1,200): %w",
			len(items), safetensors.MaxTensors, ErrUnsupported)
	}
	out := map[string]*tensorRef{}
	var keys []string
	for _, kv := range items {
		name, ok1 := kv[0].(string)
		t, ok2 := kv[1].(*tensorRef)
		if ok1 && ok2 {
			out[name] = t
		} else if ok1 && len(keys) < 8 {
			keys = append(keys, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ckpt: the checkpoint holds no tensors (keys %q): is it a model checkpoint? %w", keys, ErrFormat)
	}
	return out, nil
}

// dictItems lists the (key, value) pairs of a pickled dict or OrderedDict.
func dictItems(v interface{}) ([][2]interface{}, bool) {
	var out [][2]interface{}
	switch d := v.(type) {
	case *types.Dict:
		for _, e := range *d {
			out = append(out, [2]interface{}{e.Key, e.Value})
		}
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			if e, ok := el.Value.(*types.OrderedDictEntry); ok {
				out = append(out, [2]interface{}{e.Key, e.Value})
			}
		}
	default:
		return nil, false
	}
	return out, true
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

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// pyType names the Python type of an unpickled value, for messages.
func pyType(v interface{}) string {
	switch v.(type) {
	case nil:
		return "None"
	case *types.List:
		return "a list"
	case *types.Tuple:
		return "a tuple"
	case *tensorRef:
		return "a single tensor"
	case string:
		return "a string"
	case int, bool, float64:
		return "a number"
	}
	return "an object"
}
