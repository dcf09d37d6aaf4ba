package train

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// tinyPipeline loads the tiny golden SD1.x model (its diffusers folder).
func tinyPipeline(t testing.TB, half blocks.HalfMode) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.Load(context.Background(), golden.Path(t, "tiny_diffusers"), pipeline.LoadOptions{Half: half})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func randn(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * r.NormFloat64())
	}
	return v
}

// TestUNetContextGradient checks that gradients flow through the frozen
// UNet (float32 and float16-held weights) to its context input, against
// central finite differences of L = sum(eps * r), and that no frozen
// weight receives a gradient. The context is drawn at scale 0.3: with the
// tiny model's random unit-gain weights, unit-scale contexts make some
// cross-attention softmaxes nearly one-hot, and the loss then has near-jumps
// (seen with float16-rounded weights: a 0.2 change of the loss for a 0.005
// step of one context value) where finite differences mean nothing.
func TestUNetContextGradient(t *testing.T) {
	if testing.Short() {
		t.Skip("backward through the tiny UNet")
	}
	for _, half := range []blocks.HalfMode{blocks.HalfNever, blocks.HalfAlways} {
		t.Run(half.String(), func(t *testing.T) {
			p := tinyPipeline(t, half)
			u := p.UNet
			r := rand.New(rand.NewPCG(1, 2))
			c := u.Config
			x := tensor.MustNew(randn(r, 2*c.InChannels*8*8, 1), 2, c.InChannels, 8, 8)
			ts := []float32{500, 20}
			ctxData := randn(r, 2*7*c.ContextDim, 0.3)
			cond, err := tensor.NewParam(ctxData, 2, 7, c.ContextDim)
			if err != nil {
				t.Fatal(err)
			}
			eps, err := u.Forward(context.Background(), x, ts, cond)
			if err != nil {
				t.Fatal(err)
			}
			w := randn(r, eps.Size(), 1)
			tensor.AccGrad(eps.Node(), slices.Clone(w))
			if err := ag.Backward(eps.Node()); err != nil {
				t.Fatal(err)
			}
			grad := slices.Clone(cond.Grad())
			if grad == nil {
				t.Fatal("no gradient reached the context")
			}
			for _, l := range u.CrossAttentions() {
				if l.ToK.Grad() != nil || l.ToV.Grad() != nil || l.ToK.RequiresGrad() {
					t.Fatalf("%s: a frozen weight takes part in the gradient", l.Name)
				}
			}
			loss := func() float64 {
				out, err := u.Forward(context.Background(), x, ts, tensor.MustNew(ctxData, 2, 7, c.ContextDim))
				if err != nil {
					t.Fatal(err)
				}
				s := 0.0
				for i, v := range out.Data() {
					s += float64(v) * float64(w[i])
				}
				return s
			}
			const h = 1e-2
			for _, i := range []int{0, 3*c.ContextDim + 5, len(ctxData) - 1} {
				old := ctxData[i]
				ctxData[i] = old + float32(h)
				up := loss()
				ctxData[i] = old - float32(h)
				down := loss()
				ctxData[i] = old
				fd := (up - down) / (2 * h)
				if math.Abs(fd-float64(grad[i])) > 2e-2*(1+math.Abs(fd)) {
					t.Errorf("grad[%d] = %g, finite difference %g", i, grad[i], fd)
				}
			}
		})
	}
}
