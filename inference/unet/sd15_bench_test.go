package unet

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// benchEnv enables the SD1.5-size benchmarks: they need about 2 GB of
// memory (float16 weights) plus 3.4 GB for the float32 comparison.
const benchEnv = "PERFUSION_SD15_BENCH"

// sd15Shapes lists every tensor of cfg (see Tensors).
func sd15Shapes(b *testing.B, cfg Config) map[string][]int {
	out, err := Tensors(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// randomHalf fills a float16 checkpoint of the given tensors: matrices
// uniform with variance 1/fan_in (activations keep their scale), 1-D
// ".weight" tensors 1 + noise, biases small noise.
func randomHalf(shapes map[string][]int) weights.Map {
	out := weights.Map{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan string)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for name := range work {
				shape := shapes[name]
				h := fnv.New64a()
				h.Write([]byte(name))
				r := rand.New(rand.NewPCG(1, h.Sum64()))
				d := make([]uint16, tensor.Numel(shape))
				scale, base := float32(0.02), float32(0)
				if len(shape) > 1 {
					scale = float32(math.Sqrt(3 * float64(shape[0]) / float64(len(d))))
				} else if strings.HasSuffix(name, ".weight") {
					base = 1
				}
				for i := range d {
					d[i] = safetensors.Float32ToHalf(base + scale*(2*r.Float32()-1))
				}
				mu.Lock()
				out[name] = weights.Tensor{Half: d, Shape: shape}
				mu.Unlock()
			}
		})
	}
	for n := range shapes {
		work <- n
	}
	close(work)
	wg.Wait()
	return out
}

// peakRSS is the process's peak resident memory in bytes (Linux), or 0.
func peakRSS() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkSD15 runs UNet forwards of a random-weight model of SD1.5's
// shapes from a float16 checkpoint, with the weights held as float16
// ("half", the default) and as float32 ("float32", HalfNever): the
// difference is the cost of converting 860 M weights per forward. Sizes:
// 256 and 512 (latents 32x32 and 64x64, batch 1), and 256cfg and 512cfg
// (batch 2, as one classifier-free-guided step). Set PERFUSION_SD15_BENCH=1; run
// one sub-benchmark per process for a meaningful peak-RSS figure, e.g.
//
//	PERFUSION_SD15_BENCH=1 go test -run NONE -bench 'SD15/half/256' -benchtime 3x ./inference/unet/
func BenchmarkSD15(b *testing.B) {
	if os.Getenv(benchEnv) == "" {
		b.Skipf("set %s=1 (needs about 6 GB of memory)", benchEnv)
	}
	var src weights.Map
	model := func(b *testing.B, opt blocks.LoadOptions) *Model {
		if src == nil {
			src = randomHalf(sd15Shapes(b, SD15()))
		}
		m, err := Load(ops.CPU(), src, SD15(), opt)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	for _, mode := range []blocks.HalfMode{blocks.HalfAsStored, blocks.HalfNever} {
		name := "half"
		if mode == blocks.HalfNever {
			name = "float32"
		}
		for _, size := range []struct {
			name        string
			batch, side int
		}{{"256", 1, 32}, {"256cfg", 2, 32}, {"512", 1, 64}, {"512cfg", 2, 64}} {
			b.Run(fmt.Sprintf("%s/%s", name, size.name), func(b *testing.B) {
				m := model(b, blocks.LoadOptions{Half: mode})
				c := m.Config
				r := rand.New(rand.NewPCG(2, 3))
				x := make([]float32, size.batch*c.InChannels*size.side*size.side)
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				cond := make([]float32, size.batch*77*c.ContextDim)
				for i := range cond {
					cond[i] = float32(r.NormFloat64())
				}
				xt := tensor.MustNew(x, size.batch, c.InChannels, size.side, size.side) // [B, C, H, W]
				ct := tensor.MustNew(cond, size.batch, 77, c.ContextDim)                // [B, T, Dc]
				ts := make([]float32, size.batch)
				for i := range ts {
					ts[i] = 500
				}
				for b.Loop() {
					if _, err := m.Forward(context.Background(), xt, ts, ct); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(m.WeightBytes())/1e6, "weight-MB")
				b.ReportMetric(peakRSS()/1e6, "peakRSS-MB")
			})
		}
	}
}

// BenchmarkSD15Overhead alternates 256x256 forwards (latent 32x32, batch
// 1) of the same random SD1.5-shaped weights held as float16 and as
// float32, so that load from other processes hits both alike, and reports
// the median time of each and the conversion overhead. Needs about 6 GB.
func BenchmarkSD15Overhead(b *testing.B) {
	if os.Getenv(benchEnv) == "" {
		b.Skipf("set %s=1 (needs about 6 GB of memory)", benchEnv)
	}
	src := randomHalf(sd15Shapes(b, SD15()))
	var models [2]*Model
	for i, mode := range []blocks.HalfMode{blocks.HalfAsStored, blocks.HalfNever} {
		m, err := Load(ops.CPU(), src, SD15(), blocks.LoadOptions{Half: mode})
		if err != nil {
			b.Fatal(err)
		}
		models[i] = m
	}
	c := models[0].Config
	r := rand.New(rand.NewPCG(2, 3))
	x := tensor.Zeros(1, c.InChannels, 32, 32) // [B, C, H, W]
	cond := tensor.Zeros(1, 77, c.ContextDim)  // [B, T, Dc]
	for _, d := range [][]float32{x.Data(), cond.Data()} {
		for j := range d {
			d[j] = float32(r.NormFloat64())
		}
	}
	var times [2][]float64
	for b.Loop() {
		for i, m := range models {
			start := time.Now()
			if _, err := m.Forward(context.Background(), x, []float32{500}, cond); err != nil {
				b.Fatal(err)
			}
			times[i] = append(times[i], time.Since(start).Seconds())
		}
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	half, full := med(times[0]), med(times[1])
	b.ReportMetric(half*1e3, "half-ms")
	b.ReportMetric(full*1e3, "float32-ms")
	b.ReportMetric(100*(half-full)/full, "overhead-%")
	b.ReportMetric(float64(models[0].WeightBytes())/1e6, "half-weight-MB")
	b.ReportMetric(float64(models[1].WeightBytes())/1e6, "float32-weight-MB")
}
