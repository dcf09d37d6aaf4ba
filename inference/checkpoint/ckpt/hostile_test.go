package ckpt

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// openBounded opens a crafted file and reports the bytes allocated and the
// time taken, failing beyond the given bounds.
func openBounded(t *testing.T, file []byte, maxAlloc uint64, maxTime time.Duration) error {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	f, err := openBytes(file)
	if err == nil {
		for _, n := range f.Names() {
			tt, _ := f.Tensor(n)
			if _, err = tt.Bytes(); err != nil {
				break
			}
		}
	}
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d-byte file: allocated %.1f MB in %v: %v", len(file), float64(got)/1e6, took, err)
	if got > maxAlloc {
		t.Errorf("allocated %d bytes, want at most %d", got, maxAlloc)
	}
	if took > maxTime {
		t.Errorf("took %v, want at most %v", took, maxTime)
	}
	return err
}

// deflated is a torch zip whose data.pkl is compressed (a few KB of file
// for megabytes of pickle).
func deflated(pkl []byte, storages map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Deflate})
	w.Write(pkl)
	for k, v := range storages {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "archive/data/" + k, Method: zip.Deflate})
		w.Write(v)
	}
	zw.Close()
	return buf.Bytes()
}

// TestNamesSharingOneTensor: millions of names bound to one memoised tensor
// are refused by the scan, before the unpickler builds them.
func TestNamesSharingOneTensor(t *testing.T) {
	names := 2_300_000
	if testing.Short() {
		names = 300_000
	}
	var p ckpttest.Pickler
	p.Op(0x80, 2, '}', '(').Str("w").TensorRef("F32", "0", 1, 0, []int{1}, []int{1}).Op('q', 200)
	for i := range names {
		p.Op(0x8c, byte(len(fmt.Sprint(i)))).Op([]byte(fmt.Sprint(i))...).Op('h', 200)
	}
	p.Op('u', '.')
	err := openBounded(t, deflated(p.B.Bytes(), map[string][]byte{"0": f32s(1)}), 64<<20, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "MiB to load") || !errors.Is(err, ErrUnsupported) {
		t.Errorf("got %v, want a refusal by the memory estimate", err)
	}
}

// TestTooManyTensors: a state dict of more than safetensors.MaxTensors
// entries is refused before any tensor is built, whatever the pickle costs.
func TestTooManyTensors(t *testing.T) {
	var p ckpttest.Pickler
	p.Op(0x80, 2, '}', '(').Str("w").TensorRef("F32", "0", 1, 0, []int{1}, []int{1}).Op('q', 200)
	for i := range safetensors.MaxTensors {
		p.Str(fmt.Sprint(i)).Op('h', 200)
	}
	p.Op('u', '.')
	err := openBounded(t, ckpttest.Zip(p.B.Bytes(), map[string][]byte{"0": f32s(1)}, ckpttest.Options{}), 256<<20, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "more than the 16384") || !errors.Is(err, ErrUnsupported) {
		t.Errorf("got %v, want a refusal naming the bound", err)
	}
}

// TestNoneUnderOneMark: 16.7 M None under one MARK (16 MB of pickle,
// deflated to 16 KB) is refused by the estimate.
func TestNoneUnderOneMark(t *testing.T) {
	n := 1 << 24
	if testing.Short() {
		n = 1 << 21
	}
	pkl := append(append([]byte{0x80, 2, '('}, bytes.Repeat([]byte{'N'}, n)...), 'l', '.')
	err := openBounded(t, deflated(pkl, nil), 64<<20, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "MiB to load") {
		t.Errorf("got %v, want a refusal by the memory estimate", err)
	}
}

// TestPlaceholderCallChain: calling an allowed metadata placeholder again
// and again must not grow anything.
func TestPlaceholderCallChain(t *testing.T) {
	var p ckpttest.Pickler
	p.Op(0x80, 2, '}').Str("x").Global("numpy", "dtype").Op(bytes.Repeat([]byte{')', 'R'}, 100_000)...)
	p.Op('s', 'X', 1, 0, 0, 0, 'w').TensorRef("F32", "0", 1, 0, []int{1}, []int{1}).Op('s', '.')
	if err := openBounded(t, ckpttest.Zip(p.B.Bytes(), map[string][]byte{"0": f32s(1)}, ckpttest.Options{}), 200<<20, 10*time.Second); err != nil {
		t.Error(err)
	}
}

// TestInflationBomb: a compressed storage of zeros that would inflate a
// thousandfold is refused at open, and one that claims more bytes than its
// values need too.
func TestInflationBomb(t *testing.T) {
	n := 16 << 20 // float32 values: 64 MB of zeros deflate to about 64 KB
	if testing.Short() {
		n = 2 << 20
	}
	var p ckpttest.Pickler
	p.Op(0x80, 2, '}').Str("w").TensorRef("F32", "0", n, 0, []int{n}, []int{1}).Op('s', '.')
	file := ckpttest.Zip(p.B.Bytes(), map[string][]byte{"0": make([]byte, 4*n)}, ckpttest.Options{Deflate: true})
	err := openBounded(t, file, 32<<20, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "more than model weights compress") {
		t.Errorf("got %v, want the inflation bound", err)
	}
	var small ckpttest.Pickler
	small.Op(0x80, 2, '}').Str("w").TensorRef("F32", "0", 2, 0, []int{2}, []int{1}).Op('s', '.')
	file = ckpttest.Zip(small.B.Bytes(), map[string][]byte{"0": f32s(1, 2, 3)}, ckpttest.Options{Deflate: true})
	if _, err := openBytes(file); err == nil || !strings.Contains(err.Error(), "need 8") {
		t.Errorf("oversized member: %v", err)
	}
}

// TestDamagedStorage flips one byte of a storage: whether the tensor is read
// whole, as a view, stored or compressed, the CRC-32 mismatch is reported.
func TestDamagedStorage(t *testing.T) {
	data := f32s(1, 2, 3, 4, 5, 6)
	var p ckpttest.Pickler
	p.Op(0x80, 2, '}', '(')
	p.Str("whole").TensorRef("F32", "0", 6, 0, []int{2, 3}, []int{3, 1})
	p.Str("view").TensorRef("F32", "1", 6, 1, []int{2}, []int{1})
	p.Op('u', '.')
	for _, deflate := range []bool{false, true} {
		file := ckpttest.Zip(p.B.Bytes(), map[string][]byte{"0": data, "1": data}, ckpttest.Options{Deflate: deflate})
		for _, name := range []string{"whole", "view"} {
			t.Run(fmt.Sprintf("%s deflate=%v", name, deflate), func(t *testing.T) {
				key := map[string]string{"whole": "0", "view": "1"}[name]
				damaged := corruptMember(t, file, "archive/data/"+key)
				f, err := openBytes(damaged)
				if err != nil {
					t.Fatal(err)
				}
				tt, _ := f.Tensor(name)
				_, err = tt.Bytes()
				if err == nil || !strings.Contains(err.Error(), "damaged") || !errors.Is(err, ErrFormat) {
					t.Errorf("got %v, want a damaged-storage error", err)
				}
				// The undamaged storage still reads.
				other := map[string]string{"whole": "view", "view": "whole"}[name]
				if tt, _ := f.Tensor(other); tt != nil {
					if _, err := tt.Bytes(); err != nil {
						t.Errorf("%s: %v", other, err)
					}
				}
			})
		}
	}
}

// corruptMember flips a bit in the stored bytes of one archive member
// (stored members: its data; deflated ones: its compressed stream's last
// byte, which changes the output or breaks the stream).
func corruptMember(t *testing.T, file []byte, name string) []byte {
	zr, err := zip.NewReader(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range zr.File {
		if m.Name == name {
			off, err := m.DataOffset()
			if err != nil {
				t.Fatal(err)
			}
			out := append([]byte(nil), file...)
			at := off + int64(m.CompressedSize64)/2
			if m.Method == zip.Store {
				at = off + 5 // inside the second value
			}
			out[at] ^= 0x10
			return out
		}
	}
	t.Fatalf("no member %s", name)
	return nil
}

// TestDamagedPickle flips a byte of data.pkl: its CRC-32 is checked as it
// is read whole.
func TestDamagedPickle(t *testing.T) {
	file := ckpttest.Checkpoint(sample()[:1], ckpttest.Options{})
	zr, err := zip.NewReader(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	off, err := zr.File[0].DataOffset() // archive/data.pkl, written first
	if err != nil || zr.File[0].Name != "archive/data.pkl" {
		t.Fatalf("%s: %v", zr.File[0].Name, err)
	}
	i := off + int64(bytes.Index(file[off:], []byte("model.diffusion_model")))
	file[i] ^= 0x20 // "Model..." is still a valid pickle
	if _, err := openBytes(file); err == nil || !strings.Contains(err.Error(), "checksum") || !errors.Is(err, ErrFormat) {
		t.Errorf("got %v, want a checksum error", err)
	}
}
