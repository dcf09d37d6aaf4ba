package tinysd

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/pipeline/perf"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Tensors lists every tensor of the model (CompVis key -> shape), as the
// loaders read them.
func (c Config) Tensors() (map[string][]int, error) {
	return perf.ExpectedTensors(c.CLIP, c.UNet, c.VAE)
}

// Init returns freshly initialised float32 weights, a function of seed
// and the names only:
//   - 1-D ".weight" tensors (norm gains) 1, other 1-D tensors (biases) 0;
//   - embeddings normal with std 0.02 (token) and 0.01 (position), as CLIP;
//   - other weights uniform in +-1/sqrt(fan_in) (PyTorch's default for
//     Linear and Conv2d), fan_in the product of all but the first
//     dimension;
//   - the UNet's residual output layers (ResBlock out_layers.3,
//     SpatialTransformer proj_out) and its final conv zero, so each block
//     starts as the identity (Dhariwal & Nichol, "Diffusion Models Beat
//     GANs", 2021).
func (c Config) Init(seed uint64) (weights.Map, error) {
	shapes, err := c.Tensors()
	if err != nil {
		return nil, err
	}
	out := weights.Map{}
	for name, shape := range shapes {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		h := fnv.New64a()
		h.Write([]byte(name))
		rng := rand.New(rand.NewPCG(seed, h.Sum64()))
		switch {
		case len(shape) == 1 && strings.HasSuffix(name, ".weight"):
			for i := range data {
				data[i] = 1
			}
		case len(shape) == 1:
		case strings.HasSuffix(name, "token_embedding.weight"):
			for i := range data {
				data[i] = float32(0.02 * rng.NormFloat64())
			}
		case strings.HasSuffix(name, "position_embedding.weight"):
			for i := range data {
				data[i] = float32(0.01 * rng.NormFloat64())
			}
		case zeroInit(name):
		default:
			bound := 1 / math.Sqrt(float64(n/shape[0]))
			for i := range data {
				data[i] = float32(bound * (2*rng.Float64() - 1))
			}
		}
		out[name] = weights.Tensor{Data: data, Shape: append([]int(nil), shape...)}
	}
	return out, nil
}

// zeroInit reports the UNet weights that start at zero.
func zeroInit(name string) bool {
	if !strings.HasPrefix(name, unet.Prefix) || !strings.HasSuffix(name, ".weight") {
		return false
	}
	k := strings.TrimPrefix(name, unet.Prefix)
	return strings.HasSuffix(k, "out_layers.3.weight") || strings.HasSuffix(k, "proj_out.weight") || k == "out.2.weight"
}
