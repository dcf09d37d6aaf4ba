package ckpt

import (
	"bytes"
	"fmt"
	"strings"

	gp "github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// maxRank bounds tensor rank (SD uses at most 4).
const maxRank = 16

// storageDTypes maps torch's typed storage classes to safetensors dtypes.
var storageDTypes = map[string]string{
	"FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "DoubleStorage": "F64",
	"LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
	"ByteStorage": "U8", "BoolStorage": "BOOL", "UntypedStorage": "U8",
}

// inertGlobals is metadata real Stable Diffusion checkpoints carry besides
// their tensors (PyTorch Lightning callback state, numpy scalars, protocol-2
// bytes). Each becomes an inert placeholder: nothing is looked up or run.
var inertGlobals = map[string]bool{
	"pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint": true,
	"numpy.core.multiarray.scalar":                                 true,
	"numpy.core.multiarray._reconstruct":                           true,
	"numpy._core.multiarray.scalar":                                true,
	"numpy._core.multiarray._reconstruct":                          true,
	"numpy.dtype":                                                  true,
	"numpy.ndarray":                                                true,
	"_codecs.encode":                                               true,
}

// storageClass is a torch.XxxStorage global.
type storageClass struct{ dtype string }

// storageRef is a persistent reference to archive/data/<Key>.
type storageRef struct {
	key   string
	dtype string
	numel int64
}

// tensorRef is a rebuilt tensor: a strided view of a storage.
type tensorRef struct {
	storage *storageRef
	offset  int64 // elements
	shape   []int
	stride  []int64
}

// rebuildTensor is torch._utils._rebuild_tensor(_v2).
type rebuildTensor struct{}

// Call takes (storage, storage_offset, size, stride, ...).
func (rebuildTensor) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("ckpt: _rebuild_tensor needs 4 arguments, got %d: %w", len(args), ErrFormat)
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("ckpt: _rebuild_tensor: first argument is %T, not a storage: %w", args[0], ErrFormat)
	}
	off, ok := args[1].(int)
	if !ok || off < 0 {
		return nil, fmt.Errorf("ckpt: _rebuild_tensor: bad storage offset %v: %w", args[1], ErrFormat)
	}
	shape, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(shape) != len(stride) {
		return nil, fmt.Errorf("ckpt: _rebuild_tensor: size %v and stride %v differ in rank: %w", shape, stride, ErrFormat)
	}
	t := &tensorRef{storage: st, offset: int64(off), shape: make([]int, len(shape)), stride: make([]int64, len(shape))}
	for i := range shape {
		t.shape[i], t.stride[i] = shape[i], int64(stride[i])
	}
	return t, nil
}

// intTuple reads a tuple of non-negative ints.
func intTuple(v interface{}, what string) ([]int, error) {
	tu, ok := v.(*types.Tuple)
	if !ok || tu.Len() > maxRank {
		return nil, fmt.Errorf("ckpt: tensor %s is %T, not a tuple of at most %d ints: %w", what, v, maxRank, ErrFormat)
	}
	out := make([]int, tu.Len())
	for i := range out {
		n, ok := tu.Get(i).(int)
		if !ok || n < 0 || n > 1<<40 {
			return nil, fmt.Errorf("ckpt: tensor %s %s is not a tuple of non-negative ints: %w", what, clip(fmt.Sprint(*tu)), ErrFormat)
		}
		out[i] = n
	}
	return out, nil
}

// rebuildParameter is torch._utils._rebuild_parameter(_with_state): the
// parameter's data tensor stands for the parameter.
type rebuildParameter struct{}

// Call takes (data, requires_grad, backward_hooks[, state]).
func (rebuildParameter) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("ckpt: _rebuild_parameter without arguments: %w", ErrFormat)
	}
	t, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("ckpt: _rebuild_parameter of %T, not a tensor: %w", args[0], ErrFormat)
	}
	return t, nil
}

// rebuildFromType is torch._tensor._rebuild_from_type_v2(func, type, args,
// state), used for tensors saved with Python state: it applies func (one of
// the rebuild functions above) to args.
type rebuildFromType struct{}

// Call takes (func, new_type, args, state).
func (rebuildFromType) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 3 {
		return nil, fmt.Errorf("ckpt: _rebuild_from_type_v2 needs 3 arguments: %w", ErrFormat)
	}
	fn, ok := args[0].(types.Callable)
	inner, ok2 := args[2].(*types.Tuple)
	if _, isTensorFn := args[0].(rebuildTensor); !ok || !ok2 || (!isTensorFn && args[0] != (rebuildParameter{})) {
		return nil, fmt.Errorf("ckpt: _rebuild_from_type_v2 of %T: %w", args[0], ErrUnsupported)
	}
	return fn.Call(*inner...)
}

// inert is a placeholder for an allow-listed metadata global and for the
// objects "built" from it; it records nothing and runs nothing.
type inert struct{ name string }

// Call returns the placeholder of an instance; calling that again returns
// it unchanged, so that a chain of calls cannot grow the name.
func (c *inert) Call(args ...interface{}) (interface{}, error) { return c.instance(), nil }

// PyNew returns the placeholder of an instance, as Call.
func (c *inert) PyNew(args ...interface{}) (interface{}, error) { return c.instance(), nil }

func (c *inert) instance() *inert {
	if strings.HasSuffix(c.name, "()") {
		return c
	}
	return &inert{name: c.name + "()"}
}

// PySetState ignores the state.
func (c *inert) PySetState(interface{}) error { return nil }

// torchClass is torch.Tensor or torch.nn.parameter.Parameter, only valid as
// the type argument of _rebuild_from_type_v2.
type torchClass struct{ name string }

// findClass resolves the globals a checkpoint may name: the allow-list.
func findClass(module, name string) (interface{}, error) {
	full := module + "." + name
	switch full {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return rebuildParameter{}, nil
	case "torch._tensor._rebuild_from_type_v2":
		return rebuildFromType{}, nil
	case "torch.Tensor", "torch.nn.parameter.Parameter":
		return torchClass{full}, nil
	}
	if dt, ok := storageDTypes[name]; ok && (module == "torch" || full == "torch.storage.UntypedStorage") {
		return storageClass{dt}, nil
	}
	if inertGlobals[full] {
		return &inert{name: full}, nil
	}
	return nil, fmt.Errorf("ckpt: refusing to load global %q: a checkpoint should hold only tensors and plain data; "+
		"load it only if you trust its source, by converting it to .safetensors with a trusted tool: %w", full, ErrUnsupported)
}

// unpickle runs the restricted unpickler over a scanned pickle. Storages are
// recorded, not read.
func unpickle(data []byte) (result interface{}, err error) {
	if err := scan(data); err != nil {
		return nil, err
	}
	storages := map[string]*storageRef{}
	u := gp.NewUnpickler(bytes.NewReader(data))
	u.FindClass = findClass
	u.PersistentLoad = func(pid interface{}) (interface{}, error) { return persistentLoad(pid, storages) }
	defer func() {
		// gopickle trusts its input in a few places (odd SETITEMS counts,
		// unhashable dict keys); a panic there is malformed input.
		if r := recover(); r != nil {
			result, err = nil, fmt.Errorf("ckpt: malformed pickle (%v): %w", clip(fmt.Sprint(r)), ErrFormat)
		}
	}()
	result, err = u.Load()
	if err != nil {
		if strings.HasPrefix(err.Error(), "ckpt:") {
			return nil, err
		}
		return nil, fmt.Errorf("ckpt: malformed pickle: %s: %w", clip(err.Error()), ErrFormat)
	}
	return result, nil
}

// persistentLoad resolves ('storage', storage_type, key, location, numel).
func persistentLoad(pid interface{}, storages map[string]*storageRef) (interface{}, error) {
	tu, ok := pid.(*types.Tuple)
	if !ok || tu.Len() != 5 || tu.Get(0) != "storage" {
		return nil, fmt.Errorf("ckpt: unknown persistent id %s: %w", clip(fmt.Sprint(pid)), ErrUnsupported)
	}
	cls, ok1 := tu.Get(1).(storageClass)
	key, ok2 := tu.Get(2).(string)
	numel, ok3 := tu.Get(4).(int)
	if !ok1 || !ok2 || !ok3 || numel < 0 || key == "" || strings.ContainsAny(key, "/\\") {
		return nil, fmt.Errorf("ckpt: bad storage reference %s: %w", clip(fmt.Sprint(*tu)), ErrFormat)
	}
	if st, ok := storages[key]; ok {
		if st.dtype != cls.dtype || st.numel != int64(numel) {
			return nil, fmt.Errorf("ckpt: storage %q is referenced as %s[%d] and %s[%d]: %w", key, st.dtype, st.numel, cls.dtype, numel, ErrUnsupported)
		}
		return st, nil
	}
	st := &storageRef{key: key, dtype: cls.dtype, numel: int64(numel)}
	storages[key] = st
	return st, nil
}

// clip shortens text quoted from hostile input.
func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}
