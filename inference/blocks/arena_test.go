package blocks

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// toyModel is a two-block chain shaped like a model's forward pass: each
// block's intermediates die at its end, its output lives on (a skip), and
// the last step combines the two block outputs.
type toyModel struct {
	a, b Linear
	norm LayerNorm
}

func newToy(t *testing.T, params map[string]tensor.Tensor) toyModel {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64()) / 4
		}
		return v
	}
	src := weights.Map{
		"t.a.weight":    {Data: vals(64 * 32), Shape: []int{64, 32}},
		"t.a.bias":      {Data: vals(64), Shape: []int{64}},
		"t.b.weight":    {Data: vals(32 * 64), Shape: []int{32, 64}},
		"t.b.bias":      {Data: vals(32), Shape: []int{32}},
		"t.norm.weight": {Data: vals(32), Shape: []int{32}},
		"t.norm.bias":   {Data: vals(32), Shape: []int{32}},
	}
	l := NewLoader(src, "toy", "t.", LoadOptions{Params: params})
	m := toyModel{a: LoadLinear(l, "a", 32, 64, true), b: LoadLinear(l, "b", 64, 32, true), norm: LoadLayerNorm(l, "norm", 32, 1e-5)}
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	return m
}

// forward runs the toy pass on f, releasing as model code does.
func (m toyModel) forward(f *Flow, x tensor.Tensor) tensor.Tensor {
	block := func(x tensor.Tensor) tensor.Tensor {
		mark := f.Mark()
		h := f.Linear(m.a, x) // [N, 64]
		h = f.GELU(h)
		h = f.Linear(m.b, h) // [N, 32]
		h = f.Add(h, x)
		h = f.LayerNorm(m.norm, h)
		f.Release(mark, h)
		return h
	}
	s1 := block(x)
	s2 := block(s1)
	y := f.Add(s1, s2)
	f.Free(s1, s2)
	y = f.SiLU(y)
	f.Done(y)
	return y
}

func TestArenaFlowMatchesPlain(t *testing.T) {
	m := newToy(t, nil)
	e := ops.CPU()
	x := tensor.MustNew(make([]float32, 40*32), 40, 32)
	for i, r := 0, rand.New(rand.NewPCG(3, 4)); i < x.Size(); i++ {
		x.Data()[i] = float32(r.NormFloat64())
	}
	plain := NewFlow(e)
	want := m.forward(plain, x)
	if plain.Err() != nil {
		t.Fatal(plain.Err())
	}
	var a Arena
	var outs []tensor.Tensor
	for pass := range 4 {
		f := NewArenaFlow(e, &a)
		y := m.forward(f, x)
		if f.Err() != nil {
			t.Fatal(f.Err())
		}
		outs = append(outs, y)
		if pass == 0 {
			continue
		}
		// Every earlier result handed out by Done is intact although later
		// passes reused the arena's buffers.
		for i, o := range outs {
			if d := maxDiff(o.Data(), want.Data()); d != 0 {
				t.Fatalf("pass %d: result %d differs from the plain flow's by %g", pass, i, d)
			}
		}
	}
	st := a.Stats()
	if st.Reused == 0 || st.IdleBytes == 0 {
		t.Errorf("stats %+v: nothing recycled", st)
	}
	// Steady state: a pass allocates only its result and the small
	// per-pass bookkeeping, never a new activation buffer: it allocates
	// less than a plain pass by about the results it recycles.
	allocated := func(f *Flow) uint64 {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		m.forward(f, x)
		runtime.ReadMemStats(&ms1)
		return ms1.TotalAlloc - ms0.TotalAlloc
	}
	before := a.Stats()
	steady := allocated(NewArenaFlow(e, &a))
	after := a.Stats()
	plainBytes := allocated(NewFlow(e))
	if got := after.Allocated - before.Allocated; got != 1 {
		t.Errorf("a steady pass allocated %d buffers, want 1 (its result)", got)
	}
	recycled := uint64(after.IdleBytes) // every result but the pass's own came back
	if steady+recycled*3/4 > plainBytes {
		t.Errorf("a steady pass allocated %d bytes, a plain one %d: want at least %d less", steady, plainBytes, recycled*3/4)
	}
	t.Logf("bytes allocated by a pass: plain %d, steady with an arena %d (%d recycled)", plainBytes, steady, recycled)
}

func TestArenaReleaseKeepsScopeOutputs(t *testing.T) {
	var a Arena
	f := NewArenaFlow(ops.CPU(), &a)
	x := tensor.MustNew([]float32{1, -2, 3, -4}, 4)
	mark := f.Mark()
	s := f.SiLU(x)
	dead := f.Scale(s, 2)
	keep := f.Scale(s, 3)
	want := append([]float32(nil), keep.Data()...)
	f.Release(mark, keep)
	// New results reuse the released buffers, never keep's.
	for range 3 {
		y := f.Scale(x, 10)
		if &y.Data()[0] == &keep.Data()[0] {
			t.Fatal("a kept result was recycled")
		}
	}
	if maxDiff(keep.Data(), want) != 0 {
		t.Errorf("kept result changed: %v, want %v", keep.Data(), want)
	}
	_ = dead
	if a.Stats().Reused == 0 {
		t.Error("released buffers were not reused")
	}
}

// Once a result requires gradients, nothing is recycled, and the
// gradients are those of a plain flow.
func TestArenaFlowGradients(t *testing.T) {
	grads := func(arena bool) []float32 {
		params := map[string]tensor.Tensor{}
		m := newToy(t, params)
		x := tensor.MustNew(make([]float32, 8*32), 8, 32)
		for i := range x.Size() {
			x.Data()[i] = float32(i%7) / 7
		}
		var a Arena
		f := NewFlow(ops.CPU())
		if arena {
			f = NewArenaFlow(ops.CPU(), &a)
		}
		y := m.forward(f, x)
		if f.Err() != nil {
			t.Fatal(f.Err())
		}
		if arena && a.Stats().Reused != 0 {
			t.Errorf("a pass with gradients recycled %d buffers", a.Stats().Reused)
		}
		g := make([]float32, y.Size())
		for i := range g {
			g[i] = 1
		}
		tensor.AccGrad(y.Node(), g)
		if err := ag.Backward(y.Node()); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), params["t.a.weight"].Grad()...)
	}
	plain, pooled := grads(false), grads(true)
	if d := maxDiff(plain, pooled); d != 0 {
		t.Errorf("weight gradients differ by %g with an arena", d)
	}
}

func TestArenaTrimsUnusedSizes(t *testing.T) {
	var a Arena
	e := ops.CPU()
	run := func(n int) {
		f := NewArenaFlow(e, &a)
		x := tensor.MustNew(make([]float32, n), n)
		y := f.SiLU(x)
		y = f.Scale(y, 2)
		f.Done(y)
	}
	run(1000)
	if a.Stats().IdleBytes != 4000 {
		t.Fatalf("idle %d bytes after a pass of one dead 1000-value result, want 4000", a.Stats().IdleBytes)
	}
	run(500)
	if got := a.Stats().IdleBytes; got != 2000 {
		t.Errorf("idle %d bytes after a pass at another size, want 2000 (the old size dropped)", got)
	}
	a.Clear()
	if got := a.Stats().IdleBytes; got != 0 {
		t.Errorf("idle %d bytes after Clear", got)
	}
	run(500)
	if got := a.Stats().IdleBytes; got != 2000 {
		t.Errorf("idle %d bytes after a pass following Clear, want 2000", got)
	}
}

func TestNewArenaFlowNil(t *testing.T) {
	e := ops.CPU()
	if f := NewArenaFlow(e, nil); f.E != e || f.out != nil {
		t.Error("a nil arena does not give a plain flow")
	}
	f := NewFlow(e)
	f.Release(f.Mark())
	f.Free(tensor.Tensor{})
	f.Done()
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// viewSource lends its float16 tensors as views held by a keep value, as a
// mapped checkpoint does.
type viewSource struct {
	weights.Map
	keep  any
	views int
}

func (s *viewSource) HalfView(name string) ([]uint16, any, []int, error) {
	v, sh, err := s.Map.Half(name)
	s.views++
	return v, s.keep, sh, err
}

// A layer weight lent as a view holds what keeps the view valid, and so do
// its reshapes.
func TestLoaderKeepsViews(t *testing.T) {
	h := make([]uint16, 6)
	weights.Float32sToHalf(h, []float32{1, 2, 3, 4, 5, 6})
	keep := new(int)
	src := &viewSource{Map: weights.Map{"m.w.weight": {Half: h, Shape: []int{2, 3}}}, keep: keep}
	l := NewLoader(src, "toy", "m.")
	lin := LoadLinear(l, "w", 3, 2, false)
	if err := l.Finish(); err != nil {
		t.Fatal(err)
	}
	if src.views != 1 || lin.Half == nil || lin.Half.keep != keep {
		t.Fatalf("views %d, half %v: the weight does not hold its view's keep", src.views, lin.Half)
	}
	if &lin.Half.Data()[0] != &h[0] {
		t.Error("the view was copied")
	}
	r, err := lin.Half.Reshape(3, 2)
	if err != nil || r.keep != keep {
		t.Errorf("a reshape does not hold the keep value: %v", err)
	}
}

// TestArenaOutputIsZeroed checks that a recycled result buffer is lent
// zeroed: small ones on the caller's thread, large ones split over the
// engine's threads, and without a backend on one thread.
func TestArenaOutputIsZeroed(t *testing.T) {
	e := ops.CPU()
	if s, ok := e.B.(interface{ SetThreads(int) }); ok {
		old := e.B.Threads()
		s.SetThreads(3) // an odd count: chunks of unequal length
		defer s.SetThreads(old)
	}
	for _, be := range []backend.Backend{e.B, nil} {
		for _, n := range []int{7, 2 * clearGrain, 2*clearGrain + 5} {
			var a Arena
			b := make([]float32, n)
			for i := range b {
				b[i] = float32(i%5 + 1)
			}
			a.put([][]float32{b})
			o := &flowOutputs{a: &a, be: be, used: map[int]bool{}}
			got := o.Output(n)
			if len(got) != n || &got[0] != &b[0] {
				t.Fatalf("n=%d: the idle buffer was not recycled", n)
			}
			for i, v := range got {
				if v != 0 {
					t.Fatalf("n=%d, backend %v: value %d is %g, want 0", n, be != nil, i, v)
				}
			}
		}
	}
}
