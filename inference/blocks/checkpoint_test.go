package blocks

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

func randData(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// ckptNet is a small two-block network: block one attends from x to kv
// and adds a constant c; block two mixes block one's output with x (a
// skip, so x reaches the loss by two paths) through SiLU. With rc set each
// block is a checkpoint.
func ckptNet(t *testing.T, e *ops.Engine, rc *Recompute, x, kv, c tensor.Tensor) tensor.Tensor {
	t.Helper()
	one := func(in []tensor.Tensor) (tensor.Tensor, error) {
		f := NewFlow(e)
		h := f.Attention(in[0], in[1], in[1], 2, 0.5, false) // [B, N, 4]
		h = f.Add(h, in[2])
		return f.SiLU(h), f.Err()
	}
	two := func(in []tensor.Tensor) (tensor.Tensor, error) {
		f := NewFlow(e)
		h := f.Add(f.Scale(in[0], 1.5), in[1])
		return f.GELU(f.Add(h, f.SiLU(in[1]))), f.Err()
	}
	call := func(fn func([]tensor.Tensor) (tensor.Tensor, error), in ...tensor.Tensor) tensor.Tensor {
		var y tensor.Tensor
		var err error
		if rc != nil {
			y, err = rc.Checkpoint(fn, in...)
		} else {
			y, err = fn(in)
		}
		if err != nil {
			t.Fatal(err)
		}
		return y
	}
	h := call(one, x, kv, c)
	return call(two, h, x)
}

// TestCheckpointGradients checks that checkpointed blocks give the
// gradients of the plain graph (to float rounding) and that those match
// central finite differences of L = sum(y * w).
func TestCheckpointGradients(t *testing.T) {
	e := ops.CPU()
	r := rand.New(rand.NewPCG(3, 4))
	xd, kd, cd := randData(r, 2*5*4), randData(r, 2*3*4), randData(r, 2*5*4)
	w := randData(r, len(xd))
	grads := func(rc *Recompute) (gx, gk []float32) {
		x, _ := tensor.NewParam(slices.Clone(xd), 2, 5, 4)
		kv, _ := tensor.NewParam(slices.Clone(kd), 2, 3, 4)
		c := tensor.MustNew(cd, 2, 5, 4)
		y := ckptNet(t, e, rc, x, kv, c)
		tensor.AccGrad(y.Node(), slices.Clone(w))
		if err := ag.Backward(y.Node()); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(x.Grad()), slices.Clone(kv.Grad())
	}
	px, pk := grads(nil)
	rc := &Recompute{}
	cx, ck := grads(rc)
	if err := rc.Err(); err != nil {
		t.Fatal(err)
	}
	if px == nil || pk == nil || cx == nil || ck == nil {
		t.Fatal("a gradient is missing")
	}
	for name, p := range map[string][2][]float32{"x": {px, cx}, "kv": {pk, ck}} {
		for i := range p[0] {
			if d := math.Abs(float64(p[0][i] - p[1][i])); d > 1e-6*(1+math.Abs(float64(p[0][i]))) {
				t.Fatalf("grad %s[%d]: plain %g, checkpointed %g", name, i, p[0][i], p[1][i])
			}
		}
	}
	loss := func(xd, kd []float32) float64 {
		y := ckptNet(t, e, &Recompute{}, tensor.MustNew(xd, 2, 5, 4), tensor.MustNew(kd, 2, 3, 4), tensor.MustNew(cd, 2, 5, 4))
		s := 0.0
		for i, v := range y.Data() {
			s += float64(v) * float64(w[i])
		}
		return s
	}
	const h = 1e-2
	for _, tc := range []struct {
		name string
		data []float32
		grad []float32
	}{{"x", xd, cx}, {"kv", kd, ck}} {
		for _, i := range []int{0, 7, len(tc.data) - 1} {
			old := tc.data[i]
			tc.data[i] = old + h
			up := loss(xd, kd)
			tc.data[i] = old - h
			down := loss(xd, kd)
			tc.data[i] = old
			fd := (up - down) / (2 * h)
			if math.Abs(fd-float64(tc.grad[i])) > 1e-2*(1+math.Abs(fd)) {
				t.Errorf("grad %s[%d] = %g, finite difference %g", tc.name, i, tc.grad[i], fd)
			}
		}
	}
}

// Without inputs that require gradients a checkpoint is a plain call.
func TestCheckpointConstantInputs(t *testing.T) {
	calls := 0
	x := tensor.MustNew([]float32{1, 2}, 2)
	var rc Recompute
	y, err := rc.Checkpoint(func(in []tensor.Tensor) (tensor.Tensor, error) {
		calls++
		return ops.CPU().Scale(in[0], 2)
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || y.RequiresGrad() || !slices.Equal(y.Data(), []float32{2, 4}) {
		t.Fatalf("calls %d, requires grad %v, y %v", calls, y.RequiresGrad(), y.Data())
	}
	if _, err := rc.Checkpoint(func([]tensor.Tensor) (tensor.Tensor, error) { return x, nil }, tensor.Tensor{}); err == nil {
		t.Error("a zero input was accepted")
	}
}

// A recomputation that fails during backward is reported by Err, the
// backward pass still ends, and the input gets a zero gradient.
func TestCheckpointRecomputeFailure(t *testing.T) {
	e := ops.CPU()
	x, _ := tensor.NewParam([]float32{1, -2, 3}, 3)
	calls := 0
	boom := errors.New("boom")
	var rc Recompute
	y, err := rc.Checkpoint(func(in []tensor.Tensor) (tensor.Tensor, error) {
		calls++
		if calls > 1 {
			return tensor.Tensor{}, boom
		}
		return e.SiLU(in[0])
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	z, err := e.Scale(y, 2) // a consumer after the checkpoint
	if err != nil {
		t.Fatal(err)
	}
	tensor.AccGrad(z.Node(), []float32{1, 1, 1})
	if err := ag.Backward(z.Node()); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rc.Err(), boom) {
		t.Fatalf("Err = %v, want the recompute failure", rc.Err())
	}
	if g := x.Grad(); g == nil || slices.ContainsFunc(g, func(v float32) bool { return v != 0 }) {
		t.Fatalf("grad %v, want zeros", g)
	}
	if _, err := rc.Checkpoint(func([]tensor.Tensor) (tensor.Tensor, error) { return tensor.Tensor{}, nil }, x); err == nil {
		t.Error("a block returning the zero Tensor was accepted")
	}
}
