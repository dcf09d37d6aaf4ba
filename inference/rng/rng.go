// Package rng reproduces torch's CPU random generator so that a seed gives
// the same initial latent noise as torch.manual_seed(seed); torch.randn(shape)
// on CPU in float32.
//
// The engine is MT19937 (see mt19937.go) seeded with the low 32 bits of the
// seed. torch.randn of numel >= 16 values (a contiguous float32 tensor, which
// is what Randn models) draws numel float32 uniforms u = (next32 & 0xFFFFFF)
// * 2^-24 and applies Box–Muller (Box and Muller, "A note on the generation of
// random normal deviates", Ann. Math. Statist. 29, 1958) to blocks of 16:
// value j pairs with j+8 of its block. When numel is not a multiple of 16,
// the last 16 values are redrawn from 16 new uniforms and overwritten.
// Fewer than 16 values take torch's scalar path: per value, a float64
// Box–Muller on two 53-bit uniforms from 64-bit draws, returning the cosine
// value and caching the sine value in the generator for its next scalar-path
// value (see normal64).
//
// The float32 path evaluates log, sin and cos as glibc's libm does (libm.go),
// which reproduces torch's scalar kernel (ATEN_CPU_CAPABILITY=default) bit for
// bit and its default vectorised kernels (AVX2/AVX512) to within a few float32
// ulps. Both paths, and the cache carried from one call to the next, are
// checked against real torch outputs (testdata/torch_small.json, written by
// testdata/gen_torch_small.py).
package rng

import "math"

// Generator is a torch-compatible CPU generator. It is not safe for
// concurrent use.
type Generator struct {
	mt mt19937
	// cached is the second value of the last float64 Box–Muller pair, handed
	// out by the next scalar-path normal (torch's next_double_normal_sample).
	cached    float64
	hasCached bool
}

// New returns a generator seeded as torch.manual_seed(seed) seeds torch's
// default CPU generator: only the low 32 bits of seed are used.
func New(seed uint64) *Generator {
	g := &Generator{}
	g.Seed(seed)
	return g
}

// Seed re-seeds the generator (torch.manual_seed): it resets the engine and
// drops any cached normal value.
func (g *Generator) Seed(seed uint64) {
	g.mt.seed(uint32(seed))
	g.cached, g.hasCached = 0, false
}

// Rand returns n uniforms in [0, 1), as torch.rand(n) (float32) does.
func (g *Generator) Rand(n int) []float32 {
	out := make([]float32, max(n, 0))
	for i := range out {
		out[i] = g.uniform24()
	}
	return out
}

// Randn returns n standard normal values, as one torch.randn(shape) call with
// numel(shape) == n does (float32, CPU). Successive calls continue the same
// stream, as successive torch.randn calls on one generator do.
func (g *Generator) Randn(n int) []float32 {
	if n <= 0 {
		return []float32{}
	}
	out := make([]float32, n)
	if n < 16 {
		for i := range out {
			out[i] = float32(g.normal64())
		}
		return out
	}
	for i := range out {
		out[i] = g.uniform24()
	}
	for o := 0; o+16 <= n; o += 16 {
		boxMuller16(out[o : o+16])
	}
	if n%16 != 0 {
		tail := out[n-16:]
		for i := range tail {
			tail[i] = g.uniform24()
		}
		boxMuller16(tail)
	}
	return out
}

// uniform24 is torch's float32 uniform: 24 random bits scaled by 2^-24.
func (g *Generator) uniform24() float32 {
	return float32(g.mt.next()&(1<<24-1)) * (1.0 / (1 << 24))
}

// uniform53 is torch's float64 uniform: the low 53 bits of a 64-bit draw
// (first 32-bit output in the high word) scaled by 2^-53.
func (g *Generator) uniform53() float64 {
	hi := uint64(g.mt.next())
	lo := uint64(g.mt.next())
	return float64((hi<<32|lo)&(1<<53-1)) * (1.0 / (1 << 53))
}

// normal64 is torch's scalar normal sample (at::normal_distribution<double>):
// a cached value if there is one, else u1, u2 uniform53,
// r = sqrt(-2 log(1-u2)), theta = 2 pi u1; it returns r cos(theta) and caches
// r sin(theta).
func (g *Generator) normal64() float64 {
	if g.hasCached {
		g.hasCached = false
		return g.cached
	}
	u1 := g.uniform53()
	u2 := g.uniform53()
	r := math.Sqrt(-2 * math.Log1p(-u2))
	theta := 2 * math.Pi * u1
	g.cached, g.hasCached = r*math.Sin(theta), true
	return r * math.Cos(theta)
}

// boxMuller16 turns 16 uniforms into 16 normals in place, in float32 as
// torch's normal_fill_16 does: value j pairs with value j+8.
func boxMuller16(d []float32) {
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j] // [0, 1) -> (0, 1] for the log
		u2 := d[j+8]
		radius := sqrtf(-2 * logf(u1))
		theta := float32(2 * math.Pi * float64(u2)) // 2*pi and the product in float64
		d[j] = radius * cosf(theta)
		d[j+8] = radius * sinf(theta)
	}
}

// sqrtf is the correctly rounded float32 square root.
func sqrtf(x float32) float32 { return float32(math.Sqrt(float64(x))) }
