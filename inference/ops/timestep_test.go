package ops

import (
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

func TestTimestepEmbedding(t *testing.T) {
	ts := []float32{0, 1, 17.5, 999}
	for _, dim := range []int{8, 7, 320} {
		got := TimestepEmbedding(ts, dim)
		if len(got) != len(ts)*dim {
			t.Fatalf("dim %d: %d values", dim, len(got))
		}
		half := dim / 2
		want := make([]float64, len(got))
		for n, tv := range ts {
			for i := 0; i < half; i++ {
				arg := float64(tv) * math.Exp(-math.Log(10000)*float64(i)/float64(half))
				want[n*dim+i], want[n*dim+half+i] = math.Cos(arg), math.Sin(arg)
			}
		}
		// float32 arguments near 999 carry ~3e-5 of rounding, as the reference's do
		checkClose(t, "timestep_embedding", got, want, 2e-4, 0)
	}
}

func TestTimestepEmbeddingGolden(t *testing.T) {
	f := golden.Open(t, "tiny_unet_io.safetensors")
	ts64, _, err := f.Int64("timesteps")
	if err != nil {
		t.Fatal(err)
	}
	want, shape := golden.Float32(t, f, "intermediate.t_emb")
	ts := make([]float32, len(ts64))
	for i, v := range ts64 {
		ts[i] = float32(v)
	}
	got := TimestepEmbedding(ts, shape[1])
	golden.Check(t, "t_emb", got, want, golden.Tolerance(t, "tiny_unet_io.safetensors", "intermediate.t_emb"))
}
