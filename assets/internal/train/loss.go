// Package train trains the default model (assets/internal/tinysd) with the
// runtime's autograd: the same clip, unet and vae code the app runs,
// loaded trainable (blocks.LoadOptions.Params), the losses below as spago
// operators, AdamW, and checkpoints that make a run resumable. Every
// random choice is a function of the seed and the step, so a run resumed
// from a checkpoint computes what an uninterrupted run computes.
//
// Legend: B batch, C latent channels, H, W sizes, N element count.
package train

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// MSE is mean((pred - target)^2) over all N elements, a [1] tensor;
// target is a constant of pred's size.
func MSE(pred tensor.Tensor, target []float32) (tensor.Tensor, error) {
	if !pred.Valid() || pred.Size() != len(target) || len(target) == 0 {
		return tensor.Tensor{}, fmt.Errorf("train: mse: prediction %v and %d targets", pred, len(target))
	}
	return runOp(&mse{pred: pred, target: target}, []int{1}, pred.RequiresGrad())
}

type mse struct {
	pred   tensor.Tensor // [N]
	target []float32     // [N]
	w      []float32     // [B] sample weights over N/B elements each; nil: all 1
}

// weight is the weight of element i.
func (f *mse) weight(i int) float64 {
	if f.w == nil {
		return 1
	}
	return float64(f.w[i/(len(f.target)/len(f.w))])
}

func (f *mse) Operands() []mat.Tensor { return []mat.Tensor{f.pred.Node()} }

func (f *mse) Forward() (mat.Tensor, error) {
	var s float64
	for i, p := range f.pred.Data() {
		d := float64(p) - float64(f.target[i])
		s += f.weight(i) * d * d
	}
	return tensor.Leaf([]float32{float32(s / float64(len(f.target)))}), nil
}

// Backward: d/dp_i = 2 w_i (p_i - t_i) / N.
func (f *mse) Backward(gy mat.Tensor) error {
	if !f.pred.RequiresGrad() {
		return nil
	}
	g := float64(tensor.Float32s(gy)[0]) * 2 / float64(len(f.target))
	p := f.pred.Data()
	gp := make([]float32, len(p))
	for i := range p {
		gp[i] = float32(g * f.weight(i) * (float64(p[i]) - float64(f.target[i])))
	}
	tensor.AccGrad(f.pred.Node(), gp)
	return nil
}

// WeightedMSE is the mean over the B samples of pred [B, ...] of w_b times
// the sample's mean squared error against target, a [1] tensor (MSE when
// every w_b is 1).
func WeightedMSE(pred tensor.Tensor, target []float32, w []float32) (tensor.Tensor, error) {
	if !pred.Valid() || pred.Size() != len(target) || len(w) == 0 || len(target)%len(w) != 0 {
		return tensor.Tensor{}, fmt.Errorf("train: weighted mse: prediction %v, %d targets, %d weights", pred, len(target), len(w))
	}
	return runOp(&mse{pred: pred, target: target, w: w}, []int{1}, pred.RequiresGrad())
}

// Log-variance clamp of the posterior (as inference/vae).
const (
	logVarMin = -30
	logVarMax = 20
)

// Sample draws z = mean + exp(logvar/2) * noise [B, C, H, W] from the
// encoder's moments [B, 2C, H, W] (mean channels, then log-variance,
// clamped to [-30, 20]): the reparameterisation of Kingma & Welling,
// "Auto-Encoding Variational Bayes", 2014.
func Sample(moments tensor.Tensor, noise []float32) (tensor.Tensor, error) {
	if !moments.Valid() || moments.Rank() != 4 || moments.Dim(1)%2 != 0 || moments.Size() != 2*len(noise) {
		return tensor.Tensor{}, fmt.Errorf("train: sample: moments %v and %d noise values", moments, len(noise))
	}
	b, c2, h, w := moments.Dim(0), moments.Dim(1), moments.Dim(2), moments.Dim(3)
	f := &sample{m: moments, noise: noise, b: b, c: c2 / 2, hw: h * w}
	return runOp(f, []int{b, c2 / 2, h, w}, moments.RequiresGrad())
}

type sample struct {
	m         tensor.Tensor // [B, 2C, H, W]
	noise     []float32     // [B, C, H, W]
	b, c, hw  int
	std       []float32 // saved for Backward
	unclamped []bool
}

func (f *sample) Operands() []mat.Tensor { return []mat.Tensor{f.m.Node()} }

// at returns the offsets of element i of z in the mean and logvar halves.
func (f *sample) at(i int) (mean, logvar int) {
	n := f.c * f.hw
	b, r := i/n, i%n
	return b*2*n + r, b*2*n + n + r
}

func (f *sample) Forward() (mat.Tensor, error) {
	m := f.m.Data()
	z := make([]float32, len(f.noise))
	f.std = make([]float32, len(z))
	f.unclamped = make([]bool, len(z))
	for i := range z {
		mi, li := f.at(i)
		lv := float64(m[li])
		f.unclamped[i] = lv > logVarMin && lv < logVarMax
		lv = min(max(lv, logVarMin), logVarMax)
		std := math.Exp(lv / 2)
		f.std[i] = float32(std)
		z[i] = float32(float64(m[mi]) + std*float64(f.noise[i]))
	}
	return tensor.Leaf(z), nil
}

// Backward: dz/dmean = 1, dz/dlogvar = noise * std / 2 (0 where clamped).
func (f *sample) Backward(gy mat.Tensor) error {
	if !f.m.RequiresGrad() {
		return nil
	}
	g := tensor.Float32s(gy)
	gm := make([]float32, f.m.Size())
	for i, gi := range g {
		mi, li := f.at(i)
		gm[mi] = gi
		if f.unclamped[i] {
			gm[li] = gi * f.noise[i] * f.std[i] / 2
		}
	}
	tensor.AccGrad(f.m.Node(), gm)
	return nil
}

// KL is the mean over latent elements of KL(N(mean, var) || N(0, 1)) =
// (mean^2 + var - 1 - logvar) / 2, from moments [B, 2C, H, W], a [1]
// tensor.
func KL(moments tensor.Tensor) (tensor.Tensor, error) {
	if !moments.Valid() || moments.Rank() != 4 || moments.Dim(1)%2 != 0 || moments.Size() == 0 {
		return tensor.Tensor{}, fmt.Errorf("train: kl: moments %v, want [B, 2C, H, W]", moments)
	}
	b, c2, h, w := moments.Dim(0), moments.Dim(1), moments.Dim(2), moments.Dim(3)
	f := &kl{sample: sample{m: moments, b: b, c: c2 / 2, hw: h * w}}
	return runOp(f, []int{1}, moments.RequiresGrad())
}

type kl struct{ sample }

func (f *kl) n() int { return f.b * f.c * f.hw }

func (f *kl) Forward() (mat.Tensor, error) {
	m := f.m.Data()
	var s float64
	for i := range f.n() {
		mi, li := f.at(i)
		lv := min(max(float64(m[li]), logVarMin), logVarMax)
		mu := float64(m[mi])
		s += (mu*mu + math.Exp(lv) - 1 - lv) / 2
	}
	return tensor.Leaf([]float32{float32(s / float64(f.n()))}), nil
}

// Backward: d/dmean = mean/N, d/dlogvar = (var - 1)/(2N) (0 where clamped).
func (f *kl) Backward(gy mat.Tensor) error {
	if !f.m.RequiresGrad() {
		return nil
	}
	g := float64(tensor.Float32s(gy)[0]) / float64(f.n())
	m := f.m.Data()
	gm := make([]float32, len(m))
	for i := range f.n() {
		mi, li := f.at(i)
		gm[mi] = float32(g * float64(m[mi]))
		if lv := float64(m[li]); lv > logVarMin && lv < logVarMax {
			gm[li] = float32(g * (math.Exp(lv) - 1) / 2)
		}
	}
	tensor.AccGrad(f.m.Node(), gm)
	return nil
}

// Sum adds [1] tensors with weights: sum_i w_i x_i, a [1] tensor.
func Sum(xs []tensor.Tensor, ws []float32) (tensor.Tensor, error) {
	if len(xs) != len(ws) || len(xs) == 0 {
		return tensor.Tensor{}, fmt.Errorf("train: sum: %d terms and %d weights", len(xs), len(ws))
	}
	grad := false
	for _, x := range xs {
		if !x.Valid() || x.Size() != 1 {
			return tensor.Tensor{}, fmt.Errorf("train: sum: term %v, want [1]", x)
		}
		grad = grad || x.RequiresGrad()
	}
	return runOp(&sum{xs: xs, ws: ws}, []int{1}, grad)
}

type sum struct {
	xs []tensor.Tensor
	ws []float32
}

func (f *sum) Operands() []mat.Tensor {
	out := make([]mat.Tensor, len(f.xs))
	for i, x := range f.xs {
		out[i] = x.Node()
	}
	return out
}

func (f *sum) Forward() (mat.Tensor, error) {
	var s float64
	for i, x := range f.xs {
		s += float64(f.ws[i]) * float64(x.Data()[0])
	}
	return tensor.Leaf([]float32{float32(s)}), nil
}

func (f *sum) Backward(gy mat.Tensor) error {
	g := tensor.Float32s(gy)[0]
	for i, x := range f.xs {
		if x.RequiresGrad() {
			tensor.AccGrad(x.Node(), []float32{g * f.ws[i]})
		}
	}
	return nil
}

// runOp runs fn as an ag operator when its operand needs gradients, else
// directly (a constant), as inference/ops does.
func runOp(fn ag.AutoGradFunction, shape []int, grad bool) (tensor.Tensor, error) {
	if !grad {
		v, err := fn.Forward()
		if err != nil {
			return tensor.Tensor{}, err
		}
		return tensor.FromNode(v, shape...)
	}
	return tensor.FromNode(ag.NewOperator(fn).Run(), shape...)
}

// Backward runs back-propagation from the scalar loss (gradient 1).
func Backward(loss tensor.Tensor) error { return backwardFrom(loss, 1) }

// backwardFrom runs back-propagation from the scalar loss with gradient
// seed (a share's fraction of a batch whose loss is the shares' mean).
func backwardFrom(loss tensor.Tensor, seed float32) error {
	if !loss.RequiresGrad() {
		return fmt.Errorf("train: the loss does not depend on a trainable weight")
	}
	tensor.AccGrad(loss.Node(), []float32{seed})
	return ag.Backward(loss.Node())
}
