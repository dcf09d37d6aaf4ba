// Package blocks holds the pieces shared by the SD1.x model packages
// (inference/clip, inference/unet, inference/vae): the strict weight
// loader, the config-JSON field reader, and the weight-holding layers
// (Linear, Conv2D, GroupNorm, LayerNorm) that call the ops.Engine.
//
// Layers are named after checkpoint keys: a layer is loaded from a Loader
// scoped to its key prefix (l.Sub("to_q")), so every weight name sits next
// to the layer that uses it.
//
// Linear and Conv2D weights may be held as float16 (LoadOptions.Half): a
// HalfTensor converted into a pooled float32 buffer for each operator call.
package blocks

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// LoadError lists every problem found while loading one model: missing
// tensors, tensors of the wrong shape, and unexpected tensors under the
// model's prefix. Each problem names the full tensor key.
type LoadError struct {
	Model    string   // "unet", "vae", "clip"
	Problems []string // sorted, one per tensor
	// Missing lists the absent tensors (each also in Problems), sorted by
	// name, with the shape the model wants: loading from an empty source
	// lists the model's whole tensor set (see Expected).
	Missing []Want
}

// Want is a tensor a model reads: its full checkpoint key and the shape it
// must have (the first accepted one where several are).
type Want struct {
	Name  string
	Shape []int
}

func (e *LoadError) Error() string {
	const show = 20
	var b strings.Builder
	fmt.Fprintf(&b, "load %s: %d problem(s) with the checkpoint tensors:", e.Model, len(e.Problems))
	for i, p := range e.Problems {
		if i == show {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Problems)-show)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	return b.String()
}

// Loader reads tensors strictly from a weights.Source. Loaders made with
// Sub share one record of what was read and what went wrong, so Finish can
// report every problem of the model at once.
type Loader struct {
	st     *loadState
	prefix string   // full key prefix, ending in "." unless empty
	half   HalfMode // for the layer weights read through Matrix
}

type loadState struct {
	model  string
	src    weights.Source
	root   string
	used   map[string]bool
	ignore map[string]bool
	probs  []string
	miss   []Want
	bytes  int64 // memory of the weights read, as held
	mapped int64 // the part of bytes that is views of a mapped file (page cache, not Go heap)
	pool   *WeightPool
	params map[string]tensor.Tensor // trainable leaves by key (LoadOptions.Params), or nil
}

// NewLoader starts loading the model named model (for messages) whose
// tensors all start with root (e.g. "model.diffusion_model."). opts (at
// most one; the last wins) say how layer weights are held; the zero value
// keeps the checkpoint's dtype.
func NewLoader(src weights.Source, model, root string, opts ...LoadOptions) Loader {
	var opt LoadOptions
	if len(opts) > 0 {
		opt = opts[len(opts)-1]
	}
	half := opt.Half
	if opt.Params != nil {
		half = HalfNever
	}
	return Loader{
		st: &loadState{model: model, src: src, root: root, used: map[string]bool{}, ignore: map[string]bool{},
			pool: new(WeightPool), params: opt.Params},
		prefix: root,
		half:   half,
	}
}

// Sub returns a loader for the child module name ("input_blocks.1.0").
func (l Loader) Sub(name string) Loader {
	return Loader{st: l.st, prefix: l.prefix + name + ".", half: l.half}
}

// WithHalf returns the loader with another HalfMode for the layer weights
// read through it and its Subs (HalfNever for weights that must stay
// float32 tensors, like the UNet's cross-attention K/V projections that
// editors are given).
func (l Loader) WithHalf(m HalfMode) Loader {
	if l.st.params != nil {
		return l // trainable: always float32
	}
	l.half = m
	return l
}

// WeightBytes is the memory the weights read so far take as held: 4 bytes
// a float32 value, 2 a float16 one.
func (l Loader) WeightBytes() int64 { return l.st.bytes }

// MappedBytes is the part of WeightBytes held as views of a mapped file:
// page cache the operating system manages, outside the Go heap.
func (l Loader) MappedBytes() int64 { return l.st.mapped }

// Pool is the WeightPool the model's half weights borrow their float32
// buffers from.
func (l Loader) Pool() *WeightPool { return l.st.pool }

// Key returns the full checkpoint key of name.
func (l Loader) Key(name string) string { return l.prefix + name }

// Path returns the loader's module path relative to the model root,
// without the trailing dot ("input_blocks.1.1.transformer_blocks.0.attn2").
func (l Loader) Path() string {
	return strings.TrimSuffix(strings.TrimPrefix(l.prefix, l.st.root), ".")
}

// Has reports whether the tensor exists (it does not mark it as read).
func (l Loader) Has(name string) bool {
	_, ok := l.st.src.Shape(l.Key(name))
	return ok
}

// Shape returns a tensor's shape, or nil if absent (nothing is recorded).
func (l Loader) Shape(name string) []int {
	sh, _ := l.st.src.Shape(l.Key(name))
	return sh
}

// Ignore marks a tensor as known but unused (a buffer like position_ids),
// so that Finish does not report it. It need not exist.
func (l Loader) Ignore(name string) { l.st.ignore[l.Key(name)] = true }

// Tensor reads name, which must have exactly the given shape. On a problem
// it records it and returns the zero Tensor; Finish reports it.
func (l Loader) Tensor(name string, shape ...int) tensor.Tensor {
	return l.TensorAlt(name, shape)
}

// TensorAlt reads name, which may have any of the given shapes (used where
// converters store a 1x1 conv as a linear weight); the tensor is returned
// with the first shape.
func (l Loader) TensorAlt(name string, shapes ...[]int) tensor.Tensor {
	key := l.Key(name)
	if !l.check(key, shapes) {
		return tensor.Tensor{}
	}
	return l.float32(key, shapes[0])
}

// Matrix reads a layer weight (of a Linear or Conv2D), which may have any
// of the given shapes and is returned with the first. Per the loader's
// HalfMode it is held either as a float32 tensor or as a *HalfTensor (then
// the tensor is the zero Tensor); on a problem both are zero.
func (l Loader) Matrix(name string, shapes ...[]int) (tensor.Tensor, *HalfTensor) {
	key := l.Key(name)
	if !l.check(key, shapes) {
		return tensor.Tensor{}, nil
	}
	dtype := weights.DType(l.st.src, key)
	switch {
	case l.half == HalfNever:
	case dtype == "F16":
		data, keep, _, err := weights.HalfView(l.st.src, key) // DType is "F16" only for a HalfSource
		if err != nil {
			l.problem("tensor %q: %v", key, err)
			return tensor.Tensor{}, nil
		}
		h := l.half16(key, data, shapes[0])
		if h != nil {
			h.keep = keep // a mapped file's views live as long as the weight
			if keep != nil {
				l.st.mapped += h.Bytes()
			}
		}
		return tensor.Tensor{}, h
	case l.half == HalfAlways:
		data, _, err := l.st.src.Float32(key)
		if err != nil {
			l.problem("tensor %q: %v", key, err)
			return tensor.Tensor{}, nil
		}
		h := make([]uint16, len(data))
		if weights.Float32sToHalf(h, data) > 0 { // beyond float16's range: keep float32
			return l.wrap(key, data, shapes[0]), nil
		}
		return tensor.Tensor{}, l.half16(key, h, shapes[0])
	}
	return l.float32(key, shapes[0]), nil
}

// check records key as read and reports whether it exists with one of the
// shapes, recording the problem if not.
func (l Loader) check(key string, shapes [][]int) bool {
	l.st.used[key] = true
	got, ok := l.st.src.Shape(key)
	if !ok {
		l.problem("missing tensor %q (want shape %v)", key, shapes[0])
		l.st.miss = append(l.st.miss, Want{Name: key, Shape: append([]int(nil), shapes[0]...)})
		return false
	}
	for _, s := range shapes {
		if tensor.SameShape(got, s) {
			return true
		}
	}
	want := fmt.Sprint(shapes[0])
	for _, s := range shapes[1:] {
		want += fmt.Sprintf(" or %v", s)
	}
	l.problem("tensor %q has shape %v, want %s", key, got, want)
	return false
}

// float32 reads key as a float32 tensor of the given shape.
func (l Loader) float32(key string, shape []int) tensor.Tensor {
	data, _, err := l.st.src.Float32(key)
	if err != nil {
		l.problem("tensor %q: %v", key, err)
		return tensor.Tensor{}
	}
	return l.wrap(key, data, shape)
}

func (l Loader) wrap(key string, data []float32, shape []int) tensor.Tensor {
	newTensor := tensor.New
	if l.st.params != nil {
		newTensor = tensor.NewParam
	}
	t, err := newTensor(data, shape...)
	if err != nil {
		l.problem("tensor %q: %v", key, err)
		return tensor.Tensor{}
	}
	l.st.bytes += 4 * int64(len(data))
	if l.st.params != nil {
		l.st.params[key] = t
	}
	return t
}

func (l Loader) half16(key string, data []uint16, shape []int) *HalfTensor {
	h, err := NewHalfTensor(data, l.st.pool, shape...)
	if err != nil {
		l.problem("tensor %q: %v", key, err)
		return nil
	}
	l.st.bytes += h.Bytes()
	return h
}

func (l Loader) problem(format string, args ...any) {
	l.st.probs = append(l.st.probs, fmt.Sprintf(format, args...))
}

// Finish reports, as one *LoadError, every missing or misshapen tensor and
// every tensor under the model's root that no layer read; nil if none.
func (l Loader) Finish() error {
	probs := append([]string(nil), l.st.probs...)
	for _, n := range l.st.src.Names() {
		if strings.HasPrefix(n, l.st.root) && !l.st.used[n] && !l.st.ignore[n] {
			probs = append(probs, fmt.Sprintf("unexpected tensor %q", n))
		}
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Strings(probs)
	miss := append([]Want(nil), l.st.miss...)
	sort.Slice(miss, func(i, j int) bool { return miss[i].Name < miss[j].Name })
	return &LoadError{Model: l.st.model, Problems: probs, Missing: miss}
}

// Expected lists the tensors a model loader reads (full key -> shape): it
// calls load on an empty source, where every tensor is missing, and
// collects the *LoadError's Missing list. Any other outcome (another
// error, or problems besides missing tensors) is an error.
func Expected(load func(src weights.Source) error) (map[string][]int, error) {
	err := load(weights.Map{})
	var le *LoadError
	if !errors.As(err, &le) {
		return nil, fmt.Errorf("blocks: loading from nothing gave %v, want a list of missing tensors", err)
	}
	if len(le.Missing) != len(le.Problems) {
		return nil, fmt.Errorf("blocks: loading %s from nothing: %w", le.Model, err)
	}
	out := make(map[string][]int, len(le.Missing))
	for _, w := range le.Missing {
		out[w.Name] = w.Shape
	}
	return out, nil
}
