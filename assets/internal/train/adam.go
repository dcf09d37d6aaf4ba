package train

import (
	"math"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Param is one trainable tensor and its checkpoint key.
type Param struct {
	Name string
	T    tensor.Tensor
}

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter,
// "Decoupled Weight Decay Regularization", ICLR 2019) and clipping of the
// global gradient norm. Weight decay applies to tensors of rank 2 or more
// (not to biases and norm gains). The zero value is not usable: use
// NewAdamW.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	ClipNorm                       float64 // <= 0: no clipping
	Step                           int     // updates done
	M, V                           map[string][]float32
}

// NewAdamW returns the optimiser with the usual settings (0.9, 0.999,
// 1e-8), weight decay 0.01 and clipping at norm 1.
func NewAdamW() *AdamW {
	return &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, ClipNorm: 1,
		M: map[string][]float32{}, V: map[string][]float32{}}
}

// Update applies one step of learning rate lr from the parameters'
// accumulated gradients, then clears them. It returns the gradient norm
// before clipping. Parameters without a gradient are left as they are.
func (o *AdamW) Update(params []Param, lr float64) float64 {
	var sq float64
	for _, p := range params {
		for _, g := range p.T.Grad() {
			sq += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(sq)
	scale := 1.0
	if o.ClipNorm > 0 && norm > o.ClipNorm {
		scale = o.ClipNorm / norm
	}
	o.Step++
	c1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	c2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	for _, p := range params {
		g := p.T.Grad()
		if g == nil {
			continue
		}
		w := p.T.Data()
		m, v := o.M[p.Name], o.V[p.Name]
		if m == nil {
			m, v = make([]float32, len(w)), make([]float32, len(w))
			o.M[p.Name], o.V[p.Name] = m, v
		}
		decay := 0.0
		if p.T.Rank() >= 2 {
			decay = o.WeightDecay
		}
		for i := range w {
			gi := float64(g[i]) * scale
			mi := o.Beta1*float64(m[i]) + (1-o.Beta1)*gi
			vi := o.Beta2*float64(v[i]) + (1-o.Beta2)*gi*gi
			m[i], v[i] = float32(mi), float32(vi)
			wi := float64(w[i])
			wi -= lr * (mi/c1/(math.Sqrt(vi/c2)+o.Eps) + decay*wi)
			w[i] = float32(wi)
		}
		p.T.ZeroGrad()
	}
	return norm
}

// Schedule is the learning rate at step (0-based) of total: a linear
// warm-up over warmup steps, then a cosine decay to a tenth of peak.
func Schedule(peak float64, step, warmup, total int) float64 {
	if step < warmup {
		return peak * float64(step+1) / float64(warmup)
	}
	if total <= warmup {
		return peak
	}
	frac := float64(step-warmup) / float64(total-warmup)
	return peak * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*min(frac, 1))))
}
