package ckpt

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// pickleSeeds are data.pkl streams: real layouts, metadata and refused ones.
func pickleSeeds() [][]byte {
	var sys ckpttest.Pickler
	sys.Op(0x80, 2).Global("os", "system").Str("echo").Op(0x85, 'R', '.')
	var strided ckpttest.Pickler
	strided.Op(0x80, 2, '}', '(').Str("t").TensorRef("F32", "0", 6, 0, []int{3, 2}, []int{1, 3}).Op('u', '.')
	var proto4 ckpttest.Pickler
	proto4.Op(0x80, 4, 0x95).Op(8, 0, 0, 0, 0, 0, 0, 0).Op(0x8c, 1, 'a', 0x94, 0x8c, 1, 'b', 0x94, 0x93, 0x94, '.')
	var chain ckpttest.Pickler // a placeholder called again and again
	chain.Op(0x80, 2, '}').Str("x").Global("numpy", "dtype").Op(bytes.Repeat([]byte{')', 'R'}, 8)...).Op('s', '.')
	var shared ckpttest.Pickler // names sharing one memoised tensor
	shared.Op(0x80, 2, '}', '(').Str("w").TensorRef("F32", "0", 2, 0, []int{2}, []int{1}).Op('q', 200)
	for _, n := range []string{"a", "b", "c"} {
		shared.Str(n).Op('h', 200)
	}
	shared.Op('u', '.')
	return [][]byte{
		ckpttest.StateDictPickle(sample(), ckpttest.Options{}),
		ckpttest.StateDictPickle(sample()[:2], ckpttest.Options{Nested: true, Metadata: true}),
		sys.B.Bytes(),
		strided.B.Bytes(),
		proto4.B.Bytes(),
		chain.B.Bytes(),
		shared.B.Bytes(),
		append(append([]byte{0x80, 2, '('}, bytes.Repeat([]byte{'N'}, 64)...), 'l', '.'),
	}
}

// zipSeeds are whole checkpoints.
func zipSeeds() [][]byte {
	damaged := ckpttest.Checkpoint(sample()[:1], ckpttest.Options{})
	damaged[bytes.Index(damaged, f32s(1, 2, 3))+1] ^= 0x10 // a storage byte: the CRC-32 no longer matches
	var small ckpttest.Pickler                             // a compressed storage longer than its values
	small.Op(0x80, 2, '}').Str("w").TensorRef("F32", "0", 2, 0, []int{2}, []int{1}).Op('s', '.')
	return [][]byte{
		ckpttest.Checkpoint(sample()[:2], ckpttest.Options{}),
		ckpttest.Checkpoint(sample()[3:4], ckpttest.Options{Nested: true, Deflate: true}),
		damaged,
		ckpttest.Zip(small.B.Bytes(), map[string][]byte{"0": f32s(1, 2, 3)}, ckpttest.Options{Deflate: true}),
	}
}

// FuzzUnpickle runs the restricted unpickler on arbitrary pickles: it must
// return a value or an error, never panic or blow up memory.
func FuzzUnpickle(f *testing.F) {
	for _, s := range pickleSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := unpickle(data)
		if err == nil {
			stateDict(v)
		}
	})
}

// FuzzOpen opens arbitrary bytes as a checkpoint and reads every tensor.
func FuzzOpen(f *testing.F) {
	for _, s := range zipSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, name := range cf.Names() {
			tt, _ := cf.Tensor(name)
			b, err := tt.Bytes()
			if err == nil && int64(len(b)) != tt.Numel()*int64(safetensors.DTypeSize(tt.DType)) {
				t.Fatalf("%s: %d bytes for %d values", name, len(b), tt.Numel())
			}
		}
	})
}

// FuzzTensors wraps an arbitrary pickle and storage bytes into a valid
// archive (storages "0" and "1"), so mutations reach the tensor layout checks
// and strided reads behind the zip's checksums.
func FuzzTensors(f *testing.F) {
	for _, s := range pickleSeeds() {
		f.Add(s, []byte("0123456789abcdefghijklmnopqrstuvwxyz"))
	}
	f.Fuzz(func(t *testing.T, pkl, storage []byte) {
		z := ckpttest.Zip(pkl, map[string][]byte{"0": storage, "1": storage[:len(storage)/2]}, ckpttest.Options{})
		cf, err := NewReader(bytes.NewReader(z), int64(len(z)))
		if err != nil {
			return
		}
		for _, name := range cf.Names() {
			tt, _ := cf.Tensor(name)
			b, err := tt.Bytes()
			if err != nil || int64(len(b)) != tt.Numel()*int64(safetensors.DTypeSize(tt.DType)) {
				t.Fatalf("%s: %d bytes for %d %s values: %v", name, len(b), tt.Numel(), tt.DType, err)
			}
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz when
// PERFUSION_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PERFUSION_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set PERFUSION_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpora")
	}
	storage := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	for name, seeds := range map[string][][]byte{"FuzzUnpickle": pickleSeeds(), "FuzzOpen": zipSeeds(), "FuzzTensors": pickleSeeds()} {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if name == "FuzzTensors" {
				body += "[]byte(" + strconv.Quote(string(storage)) + ")\n"
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
