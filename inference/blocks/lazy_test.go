package blocks

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// A forward pass recorded for backward through float16 layers (a Linear
// and a 3x3 convolution) keeps no float32 copy of their weights: the heap
// grows by far less than one copy between forward and backward, and the
// gradients equal those of the float32 weights.
func TestLazyHalfWeightsHeldAsHalf(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	e := ops.CPU()
	const n = 2048 // a [n, n] Linear: 16 MB as float32
	hl, wl := halfPair(t, r, nil, n, n)
	hc, wc := halfPair(t, r, nil, 64, 64, 3, 3) // 147 KB as float32
	xv := randFloat(r, n)
	grads := func(lin Linear, conv Conv2D) ([]float32, []float32, uint64) {
		x, _ := tensor.NewParam(slices.Clone(xv), 1, n)
		img, _ := tensor.NewParam(slices.Clone(xv[:64*4*4]), 1, 64, 4, 4)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		y, err := lin.Forward(e, x)
		if err != nil {
			t.Fatal(err)
		}
		z, err := conv.Forward(e, img)
		if err != nil {
			t.Fatal(err)
		}
		y.Data()
		z.Data() // wait for the forward passes
		runtime.GC()
		runtime.ReadMemStats(&after)
		tensor.AccGrad(y.Node(), slices.Clone(xv))
		tensor.AccGrad(z.Node(), slices.Clone(xv[:z.Size()]))
		if err := ag.Backward(y.Node(), z.Node()); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(x.Grad()), slices.Clone(img.Grad()), after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	}
	p := ops.Conv2DParams{Stride: 1, Pad: ops.Pad(1)}
	wantX, wantImg, _ := grads(Linear{Weight: wl}, Conv2D{Weight: wc, Bias: tensor.Zeros(64), Params: p})
	gotX, gotImg, grew := grads(Linear{Half: hl}, Conv2D{Half: hc, Bias: tensor.Zeros(64), Params: p})
	if !slices.Equal(gotX, wantX) || !slices.Equal(gotImg, wantImg) {
		t.Error("gradients through float16 weights differ from those through their float32 values")
	}
	t.Logf("heap grew %d bytes", grew)
	if grew > 4*n*n/4 {
		t.Errorf("the heap grew by %d bytes between forward and backward: a float32 weight copy (%d bytes) is kept", grew, 4*n*n)
	}
}
