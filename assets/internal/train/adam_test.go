package train

import (
	"fmt"
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Two AdamW steps on w (rank 2, decayed) and b (rank 1) against the update
// rule computed by hand in float64; b's gradient is clipped with w's.
func TestAdamW(t *testing.T) {
	w, _ := tensor.NewParam([]float32{1, -2}, 1, 2)
	b, _ := tensor.NewParam([]float32{0.5}, 1)
	params := []Param{{"w", w}, {"b", b}}
	o := NewAdamW()
	o.ClipNorm = 1
	grads := [][]float32{{3, 4}, {0}} // norm 5: scaled by 1/5
	ref := struct{ w, b, m, v [3]float64 }{}
	ref.w = [3]float64{1, -2, 0.5}
	for step := 1; step <= 2; step++ {
		tensor.AccGrad(w.Node(), append([]float32(nil), grads[0]...))
		tensor.AccGrad(b.Node(), append([]float32(nil), grads[1]...))
		norm := o.Update(params, 0.1)
		if math.Abs(norm-5) > 1e-6 {
			t.Errorf("step %d: norm %v, want 5", step, norm)
		}
		g := [3]float64{0.6, 0.8, 0}
		for i := range 3 {
			ref.m[i] = 0.9*ref.m[i] + 0.1*g[i]
			ref.v[i] = 0.999*ref.v[i] + 0.001*g[i]*g[i]
			mh := ref.m[i] / (1 - math.Pow(0.9, float64(step)))
			vh := ref.v[i] / (1 - math.Pow(0.999, float64(step)))
			decay := 0.01
			if i == 2 {
				decay = 0
			}
			ref.w[i] -= 0.1 * (mh/(math.Sqrt(vh)+1e-8) + decay*ref.w[i])
		}
		got := []float32{w.Data()[0], w.Data()[1], b.Data()[0]}
		for i := range 3 {
			if math.Abs(float64(got[i])-ref.w[i]) > 1e-6 {
				t.Errorf("step %d: weight %d = %v, want %v", step, i, got[i], ref.w[i])
			}
		}
		if w.Grad() != nil {
			t.Error("gradient not cleared")
		}
	}
}

func TestSchedule(t *testing.T) {
	if got := Schedule(1, 0, 10, 100); got != 0.1 {
		t.Errorf("first warm-up step %v", got)
	}
	if got := Schedule(1, 10, 10, 100); got != 1 {
		t.Errorf("peak %v", got)
	}
	if got := Schedule(1, 100, 10, 100); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("end %v, want 0.1", got)
	}
}

// BenchmarkAdamWUpdate times one update of parameters the size of the
// default model's text encoder and UNet (7.7 M values in 120 tensors).
func BenchmarkAdamWUpdate(b *testing.B) {
	var params []Param
	for i := range 120 {
		n := 64 * 1000
		p, _ := tensor.NewParam(make([]float32, n), 64, n/64)
		params = append(params, Param{Name: fmt.Sprintf("p%d", i), T: p})
	}
	grad := make([]float32, 64*1000)
	for j := range grad {
		grad[j] = float32(j%7) * 1e-3
	}
	o := NewAdamW()
	b.SetBytes(int64(120 * 64 * 1000 * 4))
	for b.Loop() {
		for _, p := range params {
			tensor.AccGrad(p.T.Node(), grad)
		}
		o.Update(params, 1e-4)
	}
}
