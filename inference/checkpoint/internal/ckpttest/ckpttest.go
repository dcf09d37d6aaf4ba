// Package ckpttest writes small PyTorch zip checkpoints and safetensors
// files for tests: the pickle bytes and the archive are built by hand, as
// torch.save lays them out (protocol 2, data.pkl + data/<key> + version), so
// no Python is needed. Only tests import it.
package ckpttest

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
)

// Tensor is one tensor to write: contiguous little-endian Data of DType
// ("F32", "F16", "BF16", "I64", ...) and Shape.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// storageClass names torch's typed storage class for a dtype.
var storageClass = map[string]string{
	"F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage", "F64": "DoubleStorage",
	"I64": "LongStorage", "I32": "IntStorage", "I16": "ShortStorage", "I8": "CharStorage",
	"U8": "ByteStorage", "BOOL": "BoolStorage",
}

// width is the element size of a dtype.
func width(dtype string) int {
	switch dtype {
	case "F64", "I64":
		return 8
	case "F32", "I32":
		return 4
	case "F16", "BF16", "I16":
		return 2
	}
	return 1
}

// Pickler appends pickle opcodes.
type Pickler struct {
	B    bytes.Buffer
	memo int
}

// Op appends raw bytes (an opcode and its argument).
func (p *Pickler) Op(b ...byte) *Pickler { p.B.Write(b); return p }

// Global appends GLOBAL module.name.
func (p *Pickler) Global(module, name string) *Pickler {
	fmt.Fprintf(&p.B, "c%s\n%s\n", module, name)
	return p
}

// Str appends a BINUNICODE string.
func (p *Pickler) Str(s string) *Pickler {
	p.B.WriteByte('X')
	p.B.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
	p.B.WriteString(s)
	return p
}

// Int appends a BININT (signed 32-bit).
func (p *Pickler) Int(n int) *Pickler {
	p.B.WriteByte('J')
	p.B.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(n))))
	return p
}

// Put memoizes the top of the stack (BINPUT), as torch's pickler does.
func (p *Pickler) Put() *Pickler {
	p.Op('q', byte(p.memo))
	p.memo = (p.memo + 1) % 256
	return p
}

// IntTuple appends a tuple of ints.
func (p *Pickler) IntTuple(v []int) *Pickler {
	p.Op('(')
	for _, x := range v {
		p.Int(x)
	}
	return p.Op('t')
}

// OrderedDict appends collections.OrderedDict().
func (p *Pickler) OrderedDict() *Pickler {
	return p.Global("collections", "OrderedDict").Op(')', 'R')
}

// TensorRef appends torch._utils._rebuild_tensor_v2(storage, offset, shape,
// stride, False, OrderedDict()) with the persistent id of storage key.
func (p *Pickler) TensorRef(dtype, key string, numel, offset int, shape, stride []int) *Pickler {
	p.Global("torch._utils", "_rebuild_tensor_v2").Put()
	p.Op('(')
	p.Op('(').Str("storage").Global("torch", storageClass[dtype]).Str(key).Str("cpu").Int(numel).Op('t').Put()
	p.Op('Q').Int(offset).IntTuple(shape).IntTuple(stride).Op(0x89).OrderedDict()
	return p.Op('t').Put().Op('R').Put()
}

// Contiguous returns row-major strides for shape.
func Contiguous(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// Options shape a written checkpoint.
type Options struct {
	Prefix   string // archive folder, "archive" if empty
	Nested   bool   // {"state_dict": {...}, "epoch": 3, ...} as PyTorch Lightning writes
	Deflate  bool   // compress the storages (torch stores them)
	Metadata bool   // add Lightning callback metadata (allow-listed globals) beside state_dict
}

// StateDictPickle returns data.pkl for tensors, whose storages are "0",
// "1", ... in order.
func StateDictPickle(tensors []Tensor, opt Options) []byte {
	var p Pickler
	p.Op(0x80, 2)
	if opt.Nested {
		p.Op('}').Put().Op('(')
		p.Str("epoch").Int(3).Str("global_step").Int(840000)
		if opt.Metadata {
			// callbacks: {ModelCheckpoint: {"best_model_score": numpy scalar}}
			p.Str("callbacks").Op('}').Put()
			p.Global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint").Put()
			p.Op('}').Str("best_model_score")
			p.Global("numpy.core.multiarray", "scalar").Put()
			p.Global("numpy", "dtype").Str("f8").Op(0x89, 0x88, 0x87, 'R').Put()
			p.Op('(').Int(3).Str("<").Op('N', 'N', 'N').Int(-1).Int(-1).Int(0).Op('t', 'b')
			p.Global("_codecs", "encode").Str("\x00\x00\x00\x00\x00\x00\xf0?").Str("latin1").Op(0x86, 'R').Put()
			p.Op(0x86, 'R').Op('s', 's')
		}
		p.Str("state_dict")
	}
	p.OrderedDict().Put().Op('(')
	for i, t := range tensors {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		p.Str(t.Name).TensorRef(t.DType, fmt.Sprint(i), n, 0, t.Shape, Contiguous(t.Shape))
	}
	p.Op('u')
	if opt.Nested {
		p.Op('u')
	}
	return p.Op('.').B.Bytes()
}

// Zip writes a torch zip archive holding pkl as data.pkl and the storages
// as data/<key>.
func Zip(pkl []byte, storages map[string][]byte, opt Options) []byte {
	prefix := opt.Prefix
	if prefix == "" {
		prefix = "archive"
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte, method uint16) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "/" + name, Method: method})
		if err == nil {
			_, err = w.Write(data)
		}
		if err != nil {
			panic(err) // writing to memory cannot fail
		}
	}
	add("data.pkl", pkl, zip.Store)
	keys := make([]string, 0, len(storages))
	for k := range storages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	method := zip.Store
	if opt.Deflate {
		method = zip.Deflate
	}
	for _, k := range keys {
		add("data/"+k, storages[k], method)
	}
	add("version", []byte("3\n"), zip.Store)
	add("byteorder", []byte("little"), zip.Store)
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Checkpoint writes tensors as a torch zip checkpoint.
func Checkpoint(tensors []Tensor, opt Options) []byte {
	storages := map[string][]byte{}
	for i, t := range tensors {
		storages[fmt.Sprint(i)] = t.Data
	}
	return Zip(StateDictPickle(tensors, opt), storages, opt)
}

// Safetensors writes tensors as a safetensors file.
func Safetensors(tensors []Tensor) []byte {
	hdr := map[string]any{}
	var data []byte
	for _, t := range tensors {
		hdr[t.Name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []int{len(data), len(data) + len(t.Data)}}
		data = append(data, t.Data...)
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		panic(err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

// Zeros returns a tensor of zeros (shape-only tests).
func Zeros(name, dtype string, shape ...int) Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return Tensor{Name: name, DType: dtype, Shape: shape, Data: make([]byte, n*width(dtype))}
}
