// Package checkpoint opens Stable Diffusion 1.x weights from disk, offline:
// single-file checkpoints (.safetensors, or PyTorch .ckpt/.pt zip pickles
// read without running code, see package ckpt) and diffusers folders
// (unet/, vae/, text_encoder/, each with config.json and
// *.safetensors / *.fp16.safetensors / *.bin weights).
//
// Whatever the source, tensors are named by the canonical CompVis SD1.5
// checkpoint keys (see shared/sd15_tensors.txt):
//
//	model.diffusion_model.*                   UNet
//	first_stage_model.*                       VAE
//	cond_stage_model.transformer.text_model.* CLIP text encoder
//
// Diffusers names are converted in one place, diffusers.go; a few variants
// of single files are normalised in singlefile.go (old transformers CLIP
// names, linear VAE attention weights, EMA copies). Keys a file carries
// beyond those (model_ema.*, schedule buffers, ...) keep their own names.
//
// Tensor data is read lazily through an io.ReaderAt: opening reads headers
// only, so a multi-gigabyte file is never read whole. float32, float16 and
// bfloat16 weights (and the other safetensors dtypes) convert exactly to
// float32 with Float32; Half returns float16 weights without conversion.
//
// Open accepts any file; Architecture and Validate then tell an SD 1.x
// model from SD 2.x, SDXL, inpainting models, LoRAs and stray files, and
// Require checks the exact tensor set a model package expects. Errors start
// with "checkpoint:"; bad input wraps ErrFormat, valid input that is not
// supported wraps ErrUnsupported, including errors from the readers below.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"unsafe"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// Kind is the on-disk layout a checkpoint came from.
type Kind int

// Layouts.
const (
	KindSafetensors Kind = iota + 1 // one .safetensors file, CompVis names
	KindPickle                      // one PyTorch zip pickle (.ckpt, .pt, .bin), CompVis names
	KindDiffusers                   // a diffusers pipeline folder
)

// String names the layout.
func (k Kind) String() string {
	switch k {
	case KindSafetensors:
		return "safetensors"
	case KindPickle:
		return "ckpt"
	case KindDiffusers:
		return "diffusers"
	}
	return "unknown"
}

// Options change how a checkpoint is opened. The zero value is the default.
type Options struct {
	// UseEMA names the EMA copy of the UNet (model_ema.*) as
	// model.diffusion_model.* when a file holds both. By default the
	// model.diffusion_model.* weights are used, as the CompVis loader does
	// (use_ema: False in v1-inference.yaml); files whose UNet exists only as
	// model_ema.* use the EMA copy either way. See ema.go.
	UseEMA bool
}

// Checkpoint is an opened set of named tensors. Its methods are safe for
// concurrent use; Close it when done.
type Checkpoint struct {
	path    string
	kind    Kind
	tensors map[string]*entry
	names   []string // sorted
	configs map[string]json.RawMessage
	closers []io.Closer
	ema     bool     // UNet weights come from model_ema.*
	sources []string // every file read: weights and configs
	absent  []string // diffusers components without weights, for messages
}

// entry is one tensor: where it comes from and how to read it.
type entry struct {
	dtype  string // safetensors dtype name
	shape  []int
	origin string                 // file and original name, for messages
	read   func() ([]byte, error) // contiguous little-endian bytes, a fresh copy
	// view, when set, lends the bytes without copying (a mapped file): they
	// are read-only and valid while keep is reachable (nil keep: a copy).
	view func() (b []byte, keep any, err error)
}

// Open opens a checkpoint file or diffusers folder with default Options.
func Open(path string) (*Checkpoint, error) { return OpenWith(path, Options{}) }

// OpenWith opens a checkpoint file (.safetensors or PyTorch zip, told apart
// by content, not extension) or a diffusers folder.
func OpenWith(path string, opt Options) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var c *Checkpoint
	if st.IsDir() {
		c, err = openDiffusers(path)
	} else {
		c, err = openSingle(path, opt)
	}
	if err != nil {
		return nil, err
	}
	c.path = path
	c.sortNames()
	return c, nil
}

// sortNames rebuilds the sorted name list.
func (c *Checkpoint) sortNames() {
	c.names = c.names[:0]
	for n := range c.tensors {
		c.names = append(c.names, n)
	}
	sort.Strings(c.names)
}

// Close releases the open files.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, cl := range c.closers {
		errs = append(errs, cl.Close())
	}
	c.closers = nil
	return errors.Join(errs...)
}

// Path is the file or folder the checkpoint was opened from.
func (c *Checkpoint) Path() string { return c.path }

// Sources lists every file the checkpoint was read from: the weights file,
// or a diffusers folder's weight files and the config files it read. A
// program writing output must not overwrite any of them.
func (c *Checkpoint) Sources() []string { return append([]string(nil), c.sources...) }

// Kind is the layout the checkpoint was read from.
func (c *Checkpoint) Kind() Kind { return c.kind }

// Names lists every tensor name, sorted.
func (c *Checkpoint) Names() []string { return append([]string(nil), c.names...) }

// Has reports whether the named tensor exists.
func (c *Checkpoint) Has(name string) bool { _, ok := c.tensors[name]; return ok }

// Shape returns a tensor's shape without reading its data.
func (c *Checkpoint) Shape(name string) ([]int, bool) {
	e, ok := c.tensors[name]
	if !ok {
		return nil, false
	}
	return append([]int(nil), e.shape...), true
}

// DType returns a tensor's stored dtype ("F32", "F16", "BF16", "I64", ...),
// or "" if there is no such tensor.
func (c *Checkpoint) DType(name string) string {
	if e, ok := c.tensors[name]; ok {
		return e.dtype
	}
	return ""
}

// Config returns the raw config JSON of a diffusers folder's component:
// "unet", "vae", "text_encoder" (<component>/config.json), "scheduler"
// (scheduler/scheduler_config.json), "tokenizer"
// (tokenizer/tokenizer_config.json) or "model_index" (model_index.json).
// Single-file checkpoints have none.
func (c *Checkpoint) Config(component string) (json.RawMessage, bool) {
	b, ok := c.configs[component]
	return b, ok
}

// bytes reads a tensor's raw bytes, read-only: a view of a mapped file
// that stays valid while keep is reachable, or a copy (keep nil).
func (c *Checkpoint) bytes(name string) (e *entry, b []byte, keep any, err error) {
	e, ok := c.tensors[name]
	if !ok {
		return nil, nil, nil, fmt.Errorf("checkpoint: no tensor %q in %s: %w", name, c.path, ErrFormat)
	}
	if e.view != nil {
		b, keep, err = e.view()
	} else {
		b, err = e.read()
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint: read %s: %w", e.origin, classify(err))
	}
	return e, b, keep, nil
}

// Float32 reads a tensor converted to float32, with its shape. float16 and
// bfloat16 convert exactly.
func (c *Checkpoint) Float32(name string) ([]float32, []int, error) {
	e, b, keep, err := c.bytes(name)
	if err != nil {
		return nil, nil, err
	}
	v, err := safetensors.ToFloat32(b, e.dtype) // a new slice
	runtime.KeepAlive(keep)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", e.origin, classify(err))
	}
	return v, append([]int(nil), e.shape...), nil
}

// Half reads a tensor stored as F16 as raw IEEE binary16 values, without
// conversion (for memory-compact weights), into a new slice. A tensor of
// another dtype is an error wrapping ErrUnsupported: read it with Float32.
func (c *Checkpoint) Half(name string) ([]uint16, []int, error) {
	v, keep, sh, err := c.HalfView(name)
	if err != nil {
		return nil, nil, err
	}
	if keep != nil {
		v = append([]uint16(nil), v...)
		runtime.KeepAlive(keep)
	}
	return v, sh, nil
}

// HalfView is Half without a copy where the tensor lies in a memory-mapped
// file (a .safetensors file of safetensors.MinMapSize bytes or more, on
// Unix): the values are read-only and stay valid, even after Close, as
// long as keep is reachable, so whoever holds them holds keep too. A nil
// keep means v is an ordinary copy.
func (c *Checkpoint) HalfView(name string) (v []uint16, keep any, shape []int, err error) {
	if d := c.DType(name); d != "F16" && d != "" {
		return nil, nil, nil, fmt.Errorf("checkpoint: tensor %q is %s, not F16: %w", name, d, ErrUnsupported)
	}
	e, b, keep, err := c.bytes(name)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(b)%2 != 0 {
		return nil, nil, nil, fmt.Errorf("checkpoint: %s: %d bytes are not a whole number of F16 values: %w", e.origin, len(b), ErrFormat)
	}
	v = safetensors.Uint16View(b)
	if keep != nil && len(v) > 0 && unsafe.Pointer(unsafe.SliceData(v)) != unsafe.Pointer(unsafe.SliceData(b)) {
		keep = nil // Uint16View copied (unaligned, or a big-endian host)
	}
	return v, keep, append([]int(nil), e.shape...), nil
}
