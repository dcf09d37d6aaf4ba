package ops

import (
	"math/rand/v2"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// lender is an Outputs that lends fresh zeroed buffers and records
// them, to check that every operator writes its result into the lent one.
type lender struct{ lent [][]float32 }

func (l *lender) Output(n int) []float32 {
	b := make([]float32, n)
	l.lent = append(l.lent, b)
	return b
}

func TestWithOutputs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	rnd := func(shape ...int) tensor.Tensor {
		v := make([]float32, tensor.Numel(shape))
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return tensor.MustNew(v, shape...)
	}
	x4 := rnd(2, 4, 3, 5) // [B, C, H, W]
	w4 := rnd(6, 4, 3, 3) // [O, C, KH, KW]
	b6 := rnd(6)          // [O]
	tok := rnd(2, 7, 8)   // [B, T, D]
	w2 := rnd(5, 8)       // [Out, In]
	g4, bb4, c24 := rnd(4), rnd(4), rnd(2, 4)
	g8, bb8 := rnd(8), rnd(8)
	cases := map[string]func(e *Engine) (tensor.Tensor, error){
		"Add":        func(e *Engine) (tensor.Tensor, error) { return e.Add(x4, x4) },
		"AddChannel": func(e *Engine) (tensor.Tensor, error) { return e.AddChannel(x4, c24) },
		"Scale":      func(e *Engine) (tensor.Tensor, error) { return e.Scale(x4, 3) },
		"Attention":  func(e *Engine) (tensor.Tensor, error) { return e.Attention(tok, tok, tok, 2, 0.5, false) },
		"Concat":     func(e *Engine) (tensor.Tensor, error) { return e.ConcatChannels(x4, x4) },
		"Conv2D": func(e *Engine) (tensor.Tensor, error) {
			return e.Conv2D(x4, w4, b6, Conv2DParams{Stride: 1, Pad: Pad(1)})
		},
		"Embedding":  func(e *Engine) (tensor.Tensor, error) { return e.Embedding(w2, []int{1, 4, 0}, 3) },
		"GELU":       func(e *Engine) (tensor.Tensor, error) { return e.GELU(tok) },
		"QuickGELU":  func(e *Engine) (tensor.Tensor, error) { return e.QuickGELU(tok) },
		"GEGLU":      func(e *Engine) (tensor.Tensor, error) { return e.GEGLU(tok) },
		"GroupNorm":  func(e *Engine) (tensor.Tensor, error) { return e.GroupNormSiLU(x4, 2, g4, bb4, 1e-5) },
		"LayerNorm":  func(e *Engine) (tensor.Tensor, error) { return e.LayerNorm(tok, g8, bb8, 1e-5) },
		"Linear":     func(e *Engine) (tensor.Tensor, error) { return e.Linear(tok, w2, tensor.Tensor{}) },
		"SiLU":       func(e *Engine) (tensor.Tensor, error) { return e.SiLU(x4) },
		"ToTokens":   func(e *Engine) (tensor.Tensor, error) { return e.ToTokens(x4) },
		"Upsample2x": func(e *Engine) (tensor.Tensor, error) { return e.Upsample2x(x4) },
		"Upsample":   func(e *Engine) (tensor.Tensor, error) { return e.UpsampleNearest(x4, 5, 7) },
	}
	base := CPU()
	for name, op := range cases {
		want, err := op(base)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		l := &lender{}
		got, err := op(base.WithOutputs(l))
		if err != nil {
			t.Fatalf("%s with outputs: %v", name, err)
		}
		if len(l.lent) == 0 || &l.lent[len(l.lent)-1][0] != &got.Data()[0] {
			t.Errorf("%s: the result is not in the lent buffer", name)
		}
		for i, v := range got.Data() {
			if v != want.Data()[i] {
				t.Fatalf("%s: value %d is %v with lent buffers, %v without", name, i, v, want.Data()[i])
			}
		}
	}
	if base.out != nil {
		t.Error("WithOutputs changed the engine it was called on")
	}
}
