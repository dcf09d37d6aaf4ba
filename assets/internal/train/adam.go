package train

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

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
// The parameters are shared out over the cores (each is updated whole by
// one goroutine, so the result does not depend on how they are shared).
func (o *AdamW) Update(params []Param, lr float64) float64 {
	sq := make([]float64, len(params))
	eachParam(len(params), func(i int) {
		// A local sum: accumulating into sq[i], whose cache line both
		// goroutines write, made every addition wait for the last store
		// (about 6% of a default-model training step's CPU).
		var s float64
		for _, g := range params[i].T.Grad() {
			s += float64(g) * float64(g)
		}
		sq[i] = s
	})
	var total float64
	for _, v := range sq {
		total += v
	}
	norm := math.Sqrt(total)
	scale := 1.0
	if o.ClipNorm > 0 && norm > o.ClipNorm {
		scale = o.ClipNorm / norm
	}
	o.Step++
	c1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	c2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	for _, p := range params { // the moments' map entries, before the goroutines
		if p.T.Grad() != nil && o.M[p.Name] == nil {
			o.M[p.Name], o.V[p.Name] = make([]float32, p.T.Size()), make([]float32, p.T.Size())
		}
	}
	eachParam(len(params), func(i int) {
		p := params[i]
		g := p.T.Grad()
		if g == nil {
			return
		}
		w := p.T.Data()
		m, v := o.M[p.Name], o.V[p.Name]
		decay := 0.0
		if p.T.Rank() >= 2 {
			decay = o.WeightDecay
		}
		// One division a value: the bias corrections are multiplied in.
		lrc1, ic2, keep := lr/c1, 1/c2, 1-lr*decay
		b1, b2 := o.Beta1, o.Beta2
		for j := range w {
			gj := float64(g[j]) * scale
			mj := b1*float64(m[j]) + (1-b1)*gj
			vj := b2*float64(v[j]) + (1-b2)*gj*gj
			m[j], v[j] = float32(mj), float32(vj)
			w[j] = float32(keep*float64(w[j]) - lrc1*mj/(math.Sqrt(vj*ic2)+o.Eps))
		}
		p.T.ZeroGrad()
	})
	return norm
}

// eachParam runs fn(i) for i in [0, n) on GOMAXPROCS goroutines, each
// taking the next index as it finishes one.
func eachParam(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
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
