package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// checkGrad compares the analytic gradient g of a float32 loss at x with
// central differences of ref, the loss computed in float64.
func checkGrad(t *testing.T, name string, x []float32, g []float32, ref func([]float64) float64) {
	t.Helper()
	if len(g) != len(x) {
		t.Fatalf("%s: %d gradients for %d inputs", name, len(g), len(x))
	}
	xs := make([]float64, len(x))
	for i, v := range x {
		xs[i] = float64(v)
	}
	const h = 1e-5
	for i := range xs {
		orig := xs[i]
		xs[i] = orig + h
		up := ref(xs)
		xs[i] = orig - h
		down := ref(xs)
		xs[i] = orig
		want := (up - down) / (2 * h)
		if math.Abs(float64(g[i])-want) > 1e-4*(1+math.Abs(want)) {
			t.Errorf("%s: grad[%d] = %v, finite difference %v", name, i, g[i], want)
		}
	}
}

func randScaled(rng *rand.Rand, n int, scale float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(scale * rng.NormFloat64())
	}
	return out
}

// checkMSE compares loss(p) with the float64 weighted mean of squares
// (w per sample of len(p)/len(w) elements) and its gradient with finite
// differences; it returns the parameter it made.
func checkMSE(t *testing.T, name string, p, target, w []float32, loss func(tensor.Tensor) (tensor.Tensor, error)) tensor.Tensor {
	t.Helper()
	ref := func(x []float64) float64 {
		var s float64
		for i, v := range x {
			d := v - float64(target[i])
			s += float64(w[i/(len(x)/len(w))]) * d * d
		}
		return s / float64(len(x))
	}
	pt, _ := tensor.NewParam(append([]float32(nil), p...), 3, 4)
	l, err := loss(pt)
	if err != nil {
		t.Fatal(err)
	}
	x64 := make([]float64, len(p))
	for i, v := range p {
		x64[i] = float64(v)
	}
	if got, want := float64(l.Data()[0]), ref(x64); math.Abs(got-want) > 1e-6*want {
		t.Errorf("%s %v, float64 reference %v", name, got, want)
	}
	if err := Backward(l); err != nil {
		t.Fatal(err)
	}
	checkGrad(t, name, p, pt.Grad(), ref)
	return pt
}

func TestMSE(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	p, target := randScaled(rng, 12, 1), randScaled(rng, 12, 1)
	pt := checkMSE(t, "mse", p, target, []float32{1}, func(x tensor.Tensor) (tensor.Tensor, error) { return MSE(x, target) })
	if _, err := MSE(pt, target[:3]); err == nil {
		t.Error("mismatched sizes accepted")
	}
	c, err := MSE(tensor.MustNew(p, 12), target)
	if err != nil || c.RequiresGrad() {
		t.Errorf("constant input: %v, requires grad %v", err, c.RequiresGrad())
	}
	if err := Backward(c); err == nil {
		t.Error("Backward of a constant loss accepted")
	}
}

// moments [1, 2, 1, 3]: means then log-variances, one log-variance
// outside the clamp range (its gradient is zero).
func testMoments(rng *rand.Rand) []float32 {
	m := randScaled(rng, 6, 0.7)
	m[5] = -31
	return m
}

func TestSampleAndKL(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := testMoments(rng)
	noise, target := randScaled(rng, 3, 1), randScaled(rng, 3, 1)
	const beta = 0.3
	// L = mse(mean + exp(clamp(lv)/2) noise, target) + beta kl
	ref := func(x []float64) float64 {
		var s, k float64
		for i := range 3 {
			lv := min(max(x[3+i], logVarMin), logVarMax)
			z := x[i] + math.Exp(lv/2)*float64(noise[i])
			d := z - float64(target[i])
			s += d * d
			k += (x[i]*x[i] + math.Exp(lv) - 1 - lv) / 2
		}
		return s/3 + beta*k/3
	}
	mt, _ := tensor.NewParam(append([]float32(nil), m...), 1, 2, 1, 3)
	z, err := Sample(mt, noise)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := MSE(z, target)
	if err != nil {
		t.Fatal(err)
	}
	k, err := KL(mt)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := Sum([]tensor.Tensor{rec, k}, []float32{1, beta})
	if err != nil {
		t.Fatal(err)
	}
	x64 := make([]float64, len(m))
	for i, v := range m {
		x64[i] = float64(v)
	}
	if got, want := float64(loss.Data()[0]), ref(x64); math.Abs(got-want) > 1e-5*(1+want) {
		t.Errorf("loss %v, float64 reference %v", got, want)
	}
	if err := Backward(loss); err != nil {
		t.Fatal(err)
	}
	checkGrad(t, "sample+kl", m, mt.Grad(), ref)
	if g := mt.Grad(); g[5] != 0 {
		t.Errorf("clamped log-variance has gradient %v", g[5])
	}
	if _, err := Sample(mt, noise[:2]); err == nil {
		t.Error("short noise accepted")
	}
	if _, err := KL(tensor.MustNew(m, 1, 3, 1, 2)); err == nil {
		t.Error("odd channel count accepted")
	}
	if _, err := Sum([]tensor.Tensor{rec}, nil); err == nil {
		t.Error("missing weight accepted")
	}
}

func TestWeightedMSE(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p, target := randScaled(rng, 12, 1), randScaled(rng, 12, 1)
	w := []float32{0.25, 1, 3} // three samples of four elements
	pt := checkMSE(t, "weighted mse", p, target, w, func(x tensor.Tensor) (tensor.Tensor, error) { return WeightedMSE(x, target, w) })
	if _, err := WeightedMSE(pt, target, []float32{1, 2, 3, 4, 5}); err == nil {
		t.Error("5 weights for 12 elements accepted")
	}
}
