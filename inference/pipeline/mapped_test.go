package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// writeHalfGolden writes the golden tiny models as one checkpoint whose
// layer weights are float16 (the tensors blocks.HalfAlways would round:
// matrices and convolution kernels, but not the embeddings and the
// cross-attention K/V weights that always stay float32), with an extra
// tensor of pad bytes outside the models (ignored by the loaders).
func writeHalfGolden(t *testing.T, path string, pad int) {
	t.Helper()
	layerWeight := func(name string, shape []int) bool {
		return len(shape) >= 2 && !strings.Contains(name, "embedding") &&
			!strings.Contains(name, "attn2.to_k") && !strings.Contains(name, "attn2.to_v")
	}
	var entries []safetensors.Entry
	src := map[string]*safetensors.File{}
	for _, name := range []string{"tiny_clip_text.safetensors", "tiny_unet.safetensors", "tiny_vae.safetensors"} {
		f := golden.Open(t, name)
		for _, n := range f.Names() {
			info, _ := f.Info(n)
			dt := info.DType
			if dt == "F32" && layerWeight(n, info.Shape) {
				dt = "F16"
			}
			src[n] = f
			entries = append(entries, safetensors.Entry{Name: n, DType: dt, Shape: info.Shape})
		}
	}
	entries = append(entries, safetensors.Entry{Name: "zz_padding", DType: "U8", Shape: []int{pad}})
	err := safetensors.WriteFile(path, entries, map[string]string{"format": "pt"}, func(e safetensors.Entry, dst []byte) error {
		if e.Name == "zz_padding" {
			return nil
		}
		if e.DType != "F16" {
			b, _, err := src[e.Name].Bytes(e.Name)
			copy(dst, b)
			return err
		}
		v, _, err := src[e.Name].Float32(e.Name)
		if err != nil {
			return err
		}
		return safetensors.EncodeFloat32(dst, v, "F16")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A mapped float16 checkpoint generates exactly what the float32 golden
// models generate with their layer weights rounded to float16 in memory
// (blocks.HalfAlways), also after Load has closed the file, the collector
// has run and the file is gone: the models hold the mapping of their
// float16 weights.
func TestLoadMappedHalf(t *testing.T) {
	if testing.Short() {
		t.Skip("generates twice")
	}
	cfg, seed := readConfig(t)
	dir := t.TempDir()
	mapped := filepath.Join(dir, "mapped.safetensors")
	writeHalfGolden(t, mapped, safetensors.MinMapSize)
	generate := func(path string, half blocks.HalfMode) []byte {
		opt := goldenConfigs(t)
		opt.Half = half
		p, err := Load(context.Background(), path, opt)
		if err != nil {
			t.Fatal(err)
		}
		// Only the mapped file's float16 weights are page cache, not heap.
		if m := p.MappedBytes(); (path == mapped) != (m > 0) || m > p.WeightBytes() {
			t.Errorf("%s: MappedBytes %d of WeightBytes %d", filepath.Base(path), m, p.WeightBytes())
		}
		if path == mapped {
			if err := os.Remove(path); err != nil { // the mapping outlives the name
				t.Fatal(err)
			}
		}
		runtime.GC()
		runtime.GC()
		res, err := p.Generate(context.Background(), cfg.request(seed), nil)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(res.Images[0].Pix)
	}
	rounded := generate(golden.MergeFiles(t, []string{"tiny_clip_text.safetensors", "tiny_unet.safetensors", "tiny_vae.safetensors"}), blocks.HalfAlways)
	if got := generate(mapped, blocks.HalfAsStored); !slices.Equal(got, rounded) {
		diff := 0
		for i := range got {
			diff = max(diff, abs(int(got[i])-int(rounded[i])))
		}
		t.Errorf("the mapped float16 checkpoint generates another image than the rounded weights in memory (up to %d levels apart)", diff)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
