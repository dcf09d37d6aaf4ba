package checkpoint

import (
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// A large .safetensors checkpoint lends its float16 tensors in place:
// HalfView equals Half, holds the mapping in keep, and stays valid after
// Close and collections; Float32 converts from the mapping.
func TestHalfViewMapped(t *testing.T) {
	n := safetensors.MinMapSize / 2 // one F16 tensor of 1 MiB
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(i%2048) / 64
	}
	path := filepath.Join(t.TempDir(), "big.safetensors")
	entries := []safetensors.Entry{
		{Name: "model.diffusion_model.w", DType: "F16", Shape: []int{n / 64, 64}},
		{Name: "model.diffusion_model.b", DType: "F32", Shape: []int{3}},
	}
	err := safetensors.WriteFile(path, entries, nil, func(e safetensors.Entry, dst []byte) error {
		if e.DType == "F16" {
			return safetensors.EncodeFloat32(dst, vals, "F16")
		}
		return safetensors.EncodeFloat32(dst, []float32{1, 2, 3}, "F32")
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const w = "model.diffusion_model.w"
	view, keep, shape, err := c.Prefix("model.diffusion_model.").HalfView("w")
	if err != nil || !slices.Equal(shape, []int{n / 64, 64}) {
		t.Fatalf("HalfView: %v %v", shape, err)
	}
	if runtime.GOOS == "linux" && keep == nil {
		t.Error("HalfView of a mapped file made a copy")
	}
	copied, _, err := c.Half(w)
	if err != nil || !slices.Equal(copied, view) {
		t.Fatalf("Half differs from HalfView: %v", err)
	}
	if &copied[0] == &view[0] {
		t.Error("Half returned the mapping, not a copy")
	}
	f32, _, err := c.Float32(w)
	if err != nil || !slices.Equal(f32, vals) {
		t.Fatalf("Float32 of the mapped tensor: %v", err)
	}
	if _, _, _, err := c.HalfView("model.diffusion_model.b"); err == nil {
		t.Error("HalfView of an F32 tensor succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = nil
	runtime.GC()
	runtime.GC()
	if !slices.Equal(view, copied) {
		t.Error("the view changed after Close and collections")
	}
	runtime.KeepAlive(keep)
}
