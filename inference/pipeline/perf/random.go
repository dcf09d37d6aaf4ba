package perf

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// ExpectedTensors lists every tensor (CompVis name -> shape) the model
// loaders read for the three configs. The loaders are the only definition
// of the tensor set, so they are asked (clip.Tensors, unet.Tensors,
// vae.Tensors).
func ExpectedTensors(cc clip.Config, uc unet.Config, vc vae.Config) (map[string][]int, error) {
	out := map[string][]int{}
	for _, list := range []func() (map[string][]int, error){
		func() (map[string][]int, error) { return clip.Tensors(cc) },
		func() (map[string][]int, error) { return unet.Tensors(uc) },
		func() (map[string][]int, error) { return vae.Tensors(vc) },
	} {
		ts, err := list()
		if err != nil {
			return nil, fmt.Errorf("perf: %w", err)
		}
		maps.Copy(out, ts)
	}
	return out, nil
}

// WriteRandom writes a safetensors checkpoint at path with the given
// tensors filled with random values of dtype "F16" or "F32": weights
// uniform with variance 1/fan_in (fan_in = the product of all but the first
// dimension), so that activations keep their scale through the layers;
// 1-D ".weight" tensors (norm gains) 1 plus small noise, other 1-D tensors
// (biases) small noise. Values depend only on seed and name.
// It stops with ctx's error (and no file) once ctx is cancelled.
func WriteRandom(ctx context.Context, path string, tensors map[string][]int, dtype string, seed uint64) error {
	if dtype != "F16" && dtype != "F32" {
		return fmt.Errorf("perf: dtype %q: want F16 or F32", dtype)
	}
	entries := make([]safetensors.Entry, 0, len(tensors))
	for name, shape := range tensors {
		entries = append(entries, safetensors.Entry{Name: name, DType: dtype, Shape: shape})
	}
	var vals []float32
	fill := func(e safetensors.Entry, dst []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := len(dst) / 2
		if dtype == "F32" {
			n = len(dst) / 4
		}
		if cap(vals) < n {
			vals = make([]float32, n)
		}
		vals = vals[:n]
		randomFill(vals, e.Name, e.Shape, seed)
		return safetensors.EncodeFloat32(dst, vals, dtype)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("perf: %w", err)
	}
	meta := map[string]string{"format": "pt", "note": "random weights with SD1.5 shapes, for benchmarks"}
	if err := safetensors.WriteFile(path, entries, meta, fill); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("perf: write %s: %w", path, err)
	}
	return nil
}

// randomFill fills v with the values of one tensor (see WriteRandom).
func randomFill(v []float32, name string, shape []int, seed uint64) {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rand.New(rand.NewPCG(seed, h.Sum64()))
	if len(shape) == 1 {
		base := float32(0)
		if strings.HasSuffix(name, ".weight") {
			base = 1
		}
		for i := range v {
			v[i] = base + 0.02*(2*r.Float32()-1)
		}
		return
	}
	fanIn := 1
	for _, d := range shape[1:] {
		fanIn *= d
	}
	a := float32(math.Sqrt(3 / float64(max(fanIn, 1)))) // U(-a, a) has variance a²/3 = 1/fan_in
	for i := range v {
		v[i] = a * (2*r.Float32() - 1)
	}
}
