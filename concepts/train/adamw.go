package train

import (
	"fmt"
	"math"
	"slices"
)

// adamW is PyTorch's torch.optim.AdamW (Loshchilov & Hutter, "Decoupled
// Weight Decay Regularization", ICLR 2019) over float32 parameters with
// float64 moments, one learning rate per parameter:
//
//	p ← p·(1 − lr·λ);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//	p ← p − lr · (m / (1−β1^t)) / (√(v / (1−β2^t)) + ε)
//
// It is written out rather than taken from spago's optimizers so that its
// decoupled decay and ε placement match torch's exactly and its state is
// plain slices a resume file can hold.
type adamW struct {
	beta1, beta2, eps, decay float64
	t                        int         // steps taken
	m, v                     [][]float64 // per parameter
}

func newAdamW(s Settings, sizes []int) *adamW {
	o := &adamW{beta1: s.Beta1, beta2: s.Beta2, eps: s.Eps, decay: s.WeightDecay}
	for _, n := range sizes {
		o.m = append(o.m, make([]float64, n))
		o.v = append(o.v, make([]float64, n))
	}
	return o
}

// step updates params[i] with grads[i] at learning rate lrs[i]. A
// non-finite gradient is an error and changes nothing.
func (o *adamW) step(params, grads [][]float32, lrs []float64) error {
	if len(params) != len(o.m) || len(grads) != len(params) || len(lrs) != len(params) {
		return fmt.Errorf("train: adamw: %d params, %d grads, %d rates for %d states", len(params), len(grads), len(lrs), len(o.m))
	}
	for i, g := range grads {
		if len(g) != len(params[i]) || len(g) != len(o.m[i]) {
			return fmt.Errorf("train: adamw: parameter %d has %d values, gradient %d, state %d", i, len(params[i]), len(g), len(o.m[i]))
		}
		for _, x := range g {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("train: adamw: parameter %d has a non-finite gradient", i)
			}
		}
	}
	o.t++
	c1 := 1 - math.Pow(o.beta1, float64(o.t))
	c2 := 1 - math.Pow(o.beta2, float64(o.t))
	for i, p := range params {
		lr, m, v := lrs[i], o.m[i], o.v[i]
		for j, gj := range grads[i] {
			g := float64(gj)
			x := float64(p[j]) * (1 - lr*o.decay)
			m[j] = o.beta1*m[j] + (1-o.beta1)*g
			v[j] = o.beta2*v[j] + (1-o.beta2)*g*g
			x -= lr * (m[j] / c1) / (math.Sqrt(v[j]/c2) + o.eps)
			p[j] = float32(x)
		}
	}
	return nil
}

// adamState is adamW's state.
type adamState struct {
	T int         `json:"t"`
	M [][]float64 `json:"m"`
	V [][]float64 `json:"v"`
}

func (o *adamW) export() adamState {
	cp := func(a [][]float64) [][]float64 {
		out := make([][]float64, len(a))
		for i := range a {
			out[i] = slices.Clone(a[i])
		}
		return out
	}
	return adamState{T: o.t, M: cp(o.m), V: cp(o.v)}
}

func (o *adamW) load(a adamState) error {
	if len(a.M) != len(o.m) || len(a.V) != len(o.v) {
		return fmt.Errorf("optimizer state for %d parameters, want %d", len(a.M), len(o.m))
	}
	for i := range o.m {
		if len(a.M[i]) != len(o.m[i]) || len(a.V[i]) != len(o.v[i]) {
			return fmt.Errorf("optimizer state of parameter %d has the wrong size", i)
		}
	}
	o.t, o.m, o.v = a.T, a.M, a.V
	return nil
}
