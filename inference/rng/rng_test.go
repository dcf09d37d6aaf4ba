package rng

import (
	"fmt"
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

const rngFile = "rng_torch_randn.safetensors"

// TestMT19937Reference checks the engine against the value the C++ standard
// requires of std::mt19937 (default seed 5489, 10000th output).
func TestMT19937Reference(t *testing.T) {
	var m mt19937
	m.seed(5489)
	var v uint32
	for i := 0; i < 10000; i++ {
		v = m.next()
	}
	if v != 4123659995 {
		t.Fatalf("10000th output of mt19937(5489) = %d, want 4123659995", v)
	}
}

// TestRandnGolden compares Randn with torch.manual_seed(s); torch.randn(shape)
// for every entry of rng_torch_randn.json: the scalar-kernel tensors exactly,
// the AVX2 tensors within their tolerance.
func TestRandnGolden(t *testing.T) {
	var doc struct {
		Entries []struct {
			Tensor string `json:"tensor"`
			Seed   uint64 `json:"seed"`
			Shape  []int  `json:"shape"`
		} `json:"entries"`
	}
	golden.JSON(t, "rng_torch_randn.json", &doc)
	if len(doc.Entries) == 0 {
		t.Fatal("rng_torch_randn.json lists no entries")
	}
	f := golden.Open(t, rngFile)
	for _, e := range doc.Entries {
		t.Run(e.Tensor, func(t *testing.T) {
			n := 1
			for _, d := range e.Shape {
				n *= d
			}
			got := New(e.Seed).Randn(n)
			for _, name := range []string{e.Tensor + ".scalar_kernel", e.Tensor} {
				want, _ := golden.Float32(t, f, name)
				if len(want) > n {
					t.Fatalf("%s stores %d values, more than numel %d", name, len(want), n)
				}
				// Some entries store only a prefix of the flattened tensor.
				golden.Check(t, name, got[:len(want)], want, golden.Tolerance(t, rngFile, name))
			}
		})
	}
}

// TestRandnContinues checks that successive calls continue one stream: with
// whole blocks of 16, two calls equal one call of the summed size.
func TestRandnContinues(t *testing.T) {
	g := New(99)
	a := append(g.Randn(32), g.Randn(48)...)
	b := New(99).Randn(80)
	for i := range b {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("value %d: two calls give %g, one call %g", i, a[i], b[i])
		}
	}
	// Re-seeding restarts the stream.
	g.Seed(99)
	if c := g.Randn(80); c[79] != b[79] {
		t.Fatalf("after Seed: %g, want %g", c[79], b[79])
	}
}

// TestSeedTruncation: torch keeps only the low 32 bits of the seed.
func TestSeedTruncation(t *testing.T) {
	a := New(1<<32 + 42).Randn(20)
	b := New(42).Randn(20)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d: seed 2^32+42 gives %g, seed 42 gives %g", i, a[i], b[i])
		}
	}
}

// TestRand checks torch.rand's float32 uniform against the engine words.
func TestRand(t *testing.T) {
	var m mt19937
	m.seed(7)
	got := New(7).Rand(1000)
	for i, v := range got {
		want := float64(m.next()>>0&0xFFFFFF) / (1 << 24)
		if float64(v) != want || v < 0 || v >= 1 {
			t.Fatalf("Rand[%d] = %g, want %g", i, v, want)
		}
	}
}

// TestRandnMoments is a sanity check of the distribution on a large draw,
// tail path and small path included.
func TestRandnMoments(t *testing.T) {
	for _, n := range []int{100003, 15} {
		g := New(1)
		var vals []float32
		for len(vals) < 100000 {
			vals = append(vals, g.Randn(n)...)
		}
		var s, s2 float64
		for _, v := range vals {
			s += float64(v)
			s2 += float64(v) * float64(v)
		}
		mean, varc := s/float64(len(vals)), s2/float64(len(vals))-(s/float64(len(vals)))*(s/float64(len(vals)))
		if math.Abs(mean) > 0.02 || math.Abs(varc-1) > 0.03 {
			t.Errorf("n=%d: mean %g, variance %g; want about 0 and 1", n, mean, varc)
		}
	}
}

func ExampleGenerator_Randn() {
	g := New(42)
	x := g.Randn(1 * 4 * 64 * 64) // [1, 4, 64, 64] initial latent
	fmt.Println(len(x))
	// Output: 16384
}
