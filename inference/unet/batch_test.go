package unet

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Each image of a batch is computed independently: a batch of two equal
// inputs gives, for each, exactly what a batch of one gives, at any latent
// size (odd ones included).
func TestBatchItemsIndependent(t *testing.T) {
	m := tiny(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, hw := range [][2]int{{8, 8}, {2, 1}, {1, 2}, {3, 5}, {1, 1}} {
		h, w := hw[0], hw[1]
		n := m.Config.InChannels * h * w
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		ctxLen := 77 * m.Config.ContextDim
		cond := make([]float32, ctxLen)
		for i := range cond {
			cond[i] = float32(rng.NormFloat64())
		}
		other := make([]float32, ctxLen)
		for i := range other {
			other[i] = float32(rng.NormFloat64())
		}
		var singles [][]float32
		for _, c := range [][]float32{cond, other} {
			one, err := m.Forward(context.Background(), tensor.MustNew(x, 1, m.Config.InChannels, h, w), []float32{500}, tensor.MustNew(c, 1, 77, m.Config.ContextDim))
			if err != nil {
				t.Fatal(err)
			}
			singles = append(singles, one.Data())
		}
		x2 := append(append([]float32{}, x...), x...)
		c2 := append(append([]float32{}, cond...), other...)
		two, err := m.Forward(context.Background(), tensor.MustNew(x2, 2, m.Config.InChannels, h, w), []float32{500, 500}, tensor.MustNew(c2, 2, 77, m.Config.ContextDim))
		if err != nil {
			t.Fatal(err)
		}
		b := two.Data()
		for k, a := range singles {
			for i := range a {
				if d := math.Abs(float64(a[i] - b[k*n+i])); d > 1e-4 {
					t.Fatalf("latent %dx%d: item %d value %d differs by %g from the batch-of-one result", h, w, k, i, d)
				}
			}
		}
	}
}
