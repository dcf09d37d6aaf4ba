package ckpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
)

func openBytes(b []byte) (*File, error) { return NewReader(bytes.NewReader(b), int64(len(b))) }

func f32s(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// sample is a small state dict of several dtypes.
func sample() []ckpttest.Tensor {
	return []ckpttest.Tensor{
		{Name: "model.diffusion_model.out.2.weight", DType: "F32", Shape: []int{2, 3}, Data: f32s(1, 2, 3, 4, 5, -6)},
		{Name: "half", DType: "F16", Shape: []int{2}, Data: []byte{0x00, 0x3c, 0x01, 0x80}},
		{Name: "bf", DType: "BF16", Shape: []int{1, 1}, Data: []byte{0x80, 0x3f}},
		{Name: "ids", DType: "I64", Shape: []int{1, 2}, Data: binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 5), 76)},
		{Name: "scalar", DType: "F64", Shape: []int{}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.5))},
		{Name: "empty", DType: "F32", Shape: []int{0, 4}, Data: nil},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, opt := range []ckpttest.Options{
		{},
		{Nested: true},
		{Nested: true, Metadata: true, Prefix: "v1-5-pruned"},
		{Deflate: true},
	} {
		t.Run(fmt.Sprintf("%+v", opt), func(t *testing.T) {
			f, err := openBytes(ckpttest.Checkpoint(sample(), opt))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(f.Names()); got != len(sample()) {
				t.Errorf("%d names %v", got, f.Names())
			}
			for _, want := range sample() {
				tt, ok := f.Tensor(want.Name)
				if !ok {
					t.Fatalf("missing %s", want.Name)
				}
				if tt.DType != want.DType || fmt.Sprint(tt.Shape) != fmt.Sprint(want.Shape) {
					t.Errorf("%s: %s %v, want %s %v", want.Name, tt.DType, tt.Shape, want.DType, want.Shape)
				}
				b, err := tt.Bytes()
				if err != nil || !bytes.Equal(b, want.Data) && len(want.Data) > 0 {
					t.Errorf("%s: bytes %v %v, want %v", want.Name, b, err, want.Data)
				}
			}
		})
	}
}

// TestStridedViews reads a transposed view and two tensors sharing one
// storage at different offsets.
func TestStridedViews(t *testing.T) {
	var p ckpttest.Pickler
	p.Op(0x80, 2, '}', '(')
	p.Str("t").TensorRef("F32", "0", 6, 0, []int{3, 2}, []int{1, 3}) // transpose of [2,3]
	p.Str("tail").TensorRef("F32", "0", 6, 4, []int{2}, []int{1})
	p.Str("bcast").TensorRef("F32", "0", 6, 1, []int{2, 2}, []int{0, 1}) // expand, fits in storage
	p.Op('u', '.')
	f, err := openBytes(ckpttest.Zip(p.B.Bytes(), map[string][]byte{"0": f32s(1, 2, 3, 4, 5, 6)}, ckpttest.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{
		"t":     f32s(1, 4, 2, 5, 3, 6),
		"tail":  f32s(5, 6),
		"bcast": f32s(2, 3, 2, 3),
	} {
		tt, _ := f.Tensor(name)
		if got, err := tt.Bytes(); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: got %v %v want %v", name, got, err, want)
		}
	}
	if tt, _ := f.Tensor("t"); tt.Contiguous() {
		t.Error("transposed view reported contiguous")
	}
}

// TestRebuildVariants reads tensors saved as parameters, through
// _rebuild_from_type_v2, and with the older _rebuild_tensor.
func TestRebuildVariants(t *testing.T) {
	var p ckpttest.Pickler
	p.Op(0x80, 2, '}', '(')
	p.Str("param").Global("torch._utils", "_rebuild_parameter").Op('(')
	p.TensorRef("F32", "0", 6, 0, []int{2}, []int{1}).Op(0x88).OrderedDict().Op('t', 'R')
	p.Str("typed").Global("torch._tensor", "_rebuild_from_type_v2").Op('(')
	p.Global("torch._utils", "_rebuild_tensor_v2").Global("torch", "Tensor").Op('(')
	p.Op('(').Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(6).Op('t', 'Q')
	p.Int(2).IntTuple([]int{2}).IntTuple([]int{1}).Op(0x89).OrderedDict().Op('t', '}', 't', 'R')
	p.Str("v1").Global("torch._utils", "_rebuild_tensor").Op('(')
	p.Op('(').Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(6).Op('t', 'Q')
	p.Int(4).IntTuple([]int{2}).IntTuple([]int{1}).Op('t', 'R')
	p.Op('u', '.')
	f, err := openBytes(ckpttest.Zip(p.B.Bytes(), map[string][]byte{"0": f32s(1, 2, 3, 4, 5, 6)}, ckpttest.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"param": f32s(1, 2), "typed": f32s(3, 4), "v1": f32s(5, 6)} {
		tt, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("missing %s in %v", name, f.Names())
		}
		if got, err := tt.Bytes(); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: got %v %v want %v", name, got, err, want)
		}
	}
}

// malicious pickles must be refused, naming the global, before anything
// could run.
func TestRefusesCode(t *testing.T) {
	var sys ckpttest.Pickler
	sys.Op(0x80, 2).Global("os", "system").Str("echo pwned").Op(0x85, 'R', '.')
	var eval ckpttest.Pickler // protocol 4 STACK_GLOBAL
	eval.Op(0x80, 4, 0x8c, 8).Op([]byte("builtins")...).Op(0x8c, 4).Op([]byte("eval")...).Op(0x93).Str("1+1").Op(0x85, 'R', '.')
	var inst ckpttest.Pickler
	inst.Op('(').Str("rm -rf /").Op([]byte("isubprocess\ncall\n.")...)
	var popen ckpttest.Pickler
	popen.Op(0x80, 2).Global("subprocess", "Popen").Op('(').Str("sh").Op('t', 0x81, '.')
	var inState ckpttest.Pickler // hidden inside a state dict, after valid tensors
	inState.Op(0x80, 2, '}', '(').Str("w").TensorRef("F32", "0", 1, 0, []int{1}, []int{1})
	inState.Str("x").Global("pytorch_lightning.callbacks.early_stopping", "EarlyStopping").Op(')', 0x81, 'u', '.')
	cases := map[string]struct {
		pkl    []byte
		global string
	}{
		"os.system":       {sys.B.Bytes(), "os.system"},
		"builtins.eval":   {eval.B.Bytes(), "builtins.eval"},
		"INST subprocess": {inst.B.Bytes(), "subprocess.call"},
		"NEWOBJ Popen":    {popen.B.Bytes(), "subprocess.Popen"},
		"in state dict":   {inState.B.Bytes(), "pytorch_lightning.callbacks.early_stopping.EarlyStopping"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := openBytes(ckpttest.Zip(c.pkl, map[string][]byte{"0": f32s(1)}, ckpttest.Options{}))
			want := fmt.Sprintf("ckpt: refusing to load global %q", c.global)
			if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrUnsupported) {
				t.Errorf("got %v, want an ErrUnsupported containing %s", err, want)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	good := ckpttest.Checkpoint(sample(), ckpttest.Options{})
	okPkl := ckpttest.StateDictPickle(sample()[:1], ckpttest.Options{})
	st := map[string][]byte{"0": f32s(1, 2, 3, 4, 5, 6)}
	zipOf := func(files map[string]string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for name, body := range files {
			w, _ := zw.Create(name)
			w.Write([]byte(body))
		}
		zw.Close()
		return buf.Bytes()
	}
	var bigBytes ckpttest.Pickler
	bigBytes.Op(0x80, 4, 0x8e).Op(binary.LittleEndian.AppendUint64(nil, 1<<50)...)
	var list ckpttest.Pickler
	list.Op(0x80, 2, ']', '.')
	var noTensors ckpttest.Pickler
	noTensors.Op(0x80, 2, '}').Str("epoch").Int(1).Op('s', '.')
	var past ckpttest.Pickler
	past.Op(0x80, 2, '}').Str("w").TensorRef("F32", "0", 6, 4, []int{3}, []int{1}).Op('s', '.')
	var big ckpttest.Pickler
	big.Op(0x80, 2, '}').Str("w").TensorRef("F32", "0", 600, 0, []int{600}, []int{1}).Op('s', '.')
	var bigger ckpttest.Pickler
	bigger.Op(0x80, 2, '}').Str("w").TensorRef("F32", "0", 6, 0, []int{7}, []int{1}).Op('s', '.')
	var deep ckpttest.Pickler
	deep.Op(0x80, 2).Op(bytes.Repeat([]byte{'('}, 300)...)
	var dicts ckpttest.Pickler
	dicts.Op(0x80, 2).Op(bytes.Repeat([]byte{'}'}, 4<<20)...)
	var oddItems ckpttest.Pickler
	oddItems.Op(0x80, 2, '(').Int(1).Op('d', '.')
	var unhashable ckpttest.Pickler
	unhashable.Op(0x80, 2).OrderedDict().Op('C', 1, 'x', 'N', 's', '.')
	cases := []struct {
		name, want string
		file       []byte
		kind       error
	}{
		{"empty", "too short", nil, ErrFormat},
		{"png", "PNG image", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 100)...), ErrFormat},
		{"safetensors", "not a PyTorch zip checkpoint", ckpttest.Safetensors(sample()[:1]), ErrFormat},
		{"legacy pickle", "legacy PyTorch", append([]byte{0x80, 2, 0x8a, 0x0a}, make([]byte, 100)...), ErrUnsupported},
		{"truncated zip", "damaged zip", good[:len(good)/2], ErrFormat},
		{"zip without data.pkl", "0 top-level", zipOf(map[string]string{"a/b.txt": "x"}), ErrFormat},
		{"two data.pkl", "2 top-level", zipOf(map[string]string{"a/data.pkl": ".", "b/data.pkl": "."}), ErrFormat},
		{"big endian", "byte order", zipOf(map[string]string{"a/data.pkl": ".", "a/byteorder": "big"}), ErrUnsupported},
		{"missing storage", "missing from the archive", ckpttest.Zip(okPkl, nil, ckpttest.Options{}), ErrFormat},
		{"short storage", "too few", ckpttest.Zip(okPkl, map[string][]byte{"0": f32s(1)}, ckpttest.Options{}), ErrFormat},
		{"tensor past storage", "reaches past", ckpttest.Zip(past.B.Bytes(), st, ckpttest.Options{}), ErrFormat},
		{"tensor bigger than storage", "too few", ckpttest.Zip(big.B.Bytes(), st, ckpttest.Options{}), ErrFormat},
		{"tensor bigger than its storage", "bigger than its storage", ckpttest.Zip(bigger.B.Bytes(), st, ckpttest.Options{}), ErrUnsupported},
		{"truncated pickle", "without a STOP", ckpttest.Zip(okPkl[:len(okPkl)-1], st, ckpttest.Options{}), ErrFormat},
		{"unknown opcode", "unknown pickle opcode", ckpttest.Zip([]byte{0x80, 2, 0xff, '.'}, st, ckpttest.Options{}), ErrFormat},
		{"huge BINBYTES8", "claims", ckpttest.Zip(bigBytes.B.Bytes(), st, ckpttest.Options{}), ErrFormat},
		{"deep marks", "MARKs", ckpttest.Zip(deep.B.Bytes(), st, ckpttest.Options{}), ErrUnsupported},
		{"allocation bomb", "MiB to load", ckpttest.Zip(dicts.B.Bytes(), st, ckpttest.Options{}), ErrUnsupported},
		{"odd DICT items", "malformed pickle", ckpttest.Zip(oddItems.B.Bytes(), st, ckpttest.Options{}), ErrFormat},
		{"unhashable key", "malformed pickle", ckpttest.Zip(unhashable.B.Bytes(), st, ckpttest.Options{}), ErrFormat},
		{"top-level list", "not a dict of tensors", ckpttest.Zip(list.B.Bytes(), st, ckpttest.Options{}), ErrFormat},
		{"no tensors", "holds no tensors", ckpttest.Zip(noTensors.B.Bytes(), st, ckpttest.Options{}), ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := openBytes(c.file)
			if err == nil {
				t.Fatalf("accepted, want %q", c.want)
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "ckpt:") || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.kind) {
				t.Errorf("got %q, want a ckpt: error containing %q wrapping %v", err, c.want, c.kind)
			}
		})
	}
}

func TestOpenPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.ckpt")
	if err := os.WriteFile(p, ckpttest.Checkpoint(sample(), ckpttest.Options{Nested: true}), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.Tensor("half"); !ok {
		t.Error("missing tensor")
	}
	if _, err := Open(filepath.Dir(p)); err == nil || !errors.Is(err, ErrFormat) {
		t.Errorf("folder: %v", err)
	}
}
