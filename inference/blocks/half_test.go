package blocks

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Checkpoints hand their F16 tensors to the loader unconverted.
var (
	_ weights.HalfSource = (*checkpoint.Checkpoint)(nil)
	_ weights.HalfSource = checkpoint.View{}
)

func randHalf(r *rand.Rand, n int, scale float32) []uint16 {
	h := make([]uint16, n)
	for i := range h {
		h[i] = safetensors.Float32ToHalf(scale * (2*r.Float32() - 1))
	}
	return h
}

func randFloat(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 2*r.Float32() - 1
	}
	return v
}

func TestConvertHalf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	e := ops.CPU()
	e.B.SetThreads(3)
	for _, n := range []int{0, 1, convertChunk - 1, convertChunk + 1, 3*convertChunk + 5} {
		src := make([]uint16, n)
		for i := range src {
			src[i] = uint16(r.Uint32()) // every bit pattern: subnormals, Inf, NaN
		}
		want := make([]float32, n)
		for i, h := range src {
			want[i] = safetensors.HalfToFloat32(h)
		}
		for _, eng := range []*ops.Engine{e, nil} {
			got := make([]float32, n+1)
			got[n] = 7
			ConvertHalf(eng, got, src)
			for i := range want {
				if !sameHalf(got[i], want[i], src[i]) {
					t.Fatalf("n=%d: [%d] = %#x, want %#x", n, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
				}
			}
			if got[n] != 7 {
				t.Fatalf("n=%d: wrote past the end", n)
			}
		}
	}
}

// sameHalf reports whether got is the conversion want of h: bit for bit,
// except that a signalling NaN may come out quiet (F16C sets the bit).
func sameHalf(got, want float32, h uint16) bool {
	g, w := math.Float32bits(got), math.Float32bits(want)
	if h&0x7c00 == 0x7c00 && h&0x3ff != 0 && h&0x200 == 0 {
		return g&^(1<<22) == w
	}
	return g == w
}

func TestConvertHalfOHIW(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	e := ops.CPU()
	e.B.SetThreads(3)
	for _, s := range [][4]int{{3, 5, 3, 3}, {40, 300, 3, 3}, {2, 3, 1, 1}, {4, 2, 2, 5}, {7, 130, 3, 1}} {
		O, C, KH, KW := s[0], s[1], s[2], s[3]
		n := O * C * KH * KW
		src := make([]uint16, n)
		for i := range src {
			src[i] = uint16(r.Uint32())
		}
		for _, eng := range []*ops.Engine{e, nil} {
			got := make([]float32, n+1)
			got[n] = 7
			ConvertHalfOHIW(eng, got, src, O, C, KH, KW)
			for o := range O {
				for c := range C {
					for kh := range KH {
						for kw := range KW {
							h := src[((o*C+c)*KH+kh)*KW+kw]
							g := got[((o*KH+kh)*C+c)*KW+kw]
							if !sameHalf(g, safetensors.HalfToFloat32(h), h) {
								t.Fatalf("%v: [%d %d %d %d] = %#x, want %#x", s, o, kh, c, kw,
									math.Float32bits(g), math.Float32bits(safetensors.HalfToFloat32(h)))
							}
						}
					}
				}
			}
			if got[n] != 7 {
				t.Fatalf("%v: wrote past the end", s)
			}
		}
	}
}

// A float16 conv weight (converted into ops.OHIW) with a fused residual
// gives the values of its float32 weight and a separate Add, up to the
// rounding of the different summation order.
func TestHalfConvAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	e := ops.CPU()
	pool := new(WeightPool)
	for _, shape := range [][]int{{5, 34, 3, 3}, {5, 3, 3, 3}, {5, 34, 1, 1}, {5, 34, 3, 3}} {
		ch, cw := halfPair(t, r, pool, shape...)
		bias := tensor.MustNew(randFloat(r, shape[0]), shape[0])
		p := ops.Conv2DParams{Pad: ops.Pad(shape[2] / 2)}
		conv, ref := Conv2D{Half: ch, Bias: bias, Params: p}, Conv2D{Weight: cw, Bias: bias, Params: p}
		img := tensor.MustNew(randFloat(r, 2*shape[1]*6*5), 2, shape[1], 6, 5) // [B, C, H, W]
		res := tensor.MustNew(randFloat(r, 2*shape[0]*6*5), 2, shape[0], 6, 5)
		got, err := conv.ForwardAdd(e, img, res)
		if err != nil {
			t.Fatal(err)
		}
		y, err := ref.Forward(e, img)
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.Add(y, res)
		if err != nil {
			t.Fatal(err)
		}
		if !tensor.SameShape(got.Shape(), want.Shape()) {
			t.Fatalf("%v: shape %v, want %v", shape, got.Shape(), want.Shape())
		}
		for i, v := range want.Data() {
			if d := math.Abs(float64(got.Data()[i] - v)); d > 1e-5*(1+math.Abs(float64(v))) {
				t.Fatalf("%v: [%d] = %v, want %v", shape, i, got.Data()[i], v)
			}
		}
	}
	if s := pool.Stats(); s.InUse != 0 {
		t.Errorf("pool: %+v", s)
	}
}

func TestLoaderHalfModes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	f32 := randFloat(r, 6)
	f16 := randHalf(r, 6, 1)
	big := []float32{1, 2, 7e4, 3} // 7e4 is beyond float16
	src := weights.Map{
		"m.a.weight": {Half: f16, Shape: []int{2, 3}},
		"m.a.bias":   {Half: []uint16{0x3c00, 0x4000}, Shape: []int{2}},
		"m.b.weight": {Data: f32, Shape: []int{3, 2}},
		"m.c.weight": {Data: big, Shape: []int{2, 2}},
	}
	type want struct{ aHalf, bHalf bool }
	for _, tc := range []struct {
		mode HalfMode
		want want
	}{
		{HalfAsStored, want{true, false}},
		{HalfNever, want{false, false}},
		{HalfAlways, want{true, true}},
	} {
		l := NewLoader(src, "toy", "m.", LoadOptions{Half: tc.mode})
		a := LoadLinear(l, "a", 3, 2, true)
		b := LoadLinear(l, "b", 2, 3, false)
		c := LoadLinear(l, "c", 2, 2, false)
		if err := l.Finish(); err != nil {
			t.Fatalf("%v: %v", tc.mode, err)
		}
		if (a.Half != nil) != tc.want.aHalf || (b.Half != nil) != tc.want.bHalf || a.Weight.Valid() == tc.want.aHalf || b.Weight.Valid() == tc.want.bHalf {
			t.Errorf("%v: a half %v, b half %v; want %+v", tc.mode, a.Half != nil, b.Half != nil, tc.want)
		}
		if c.Half != nil || !slices.Equal(c.Weight.Data(), big) {
			t.Errorf("%v: a weight beyond float16's range was not kept float32", tc.mode)
		}
		if got := a.Bias.Data(); !slices.Equal(got, []float32{1, 2}) {
			t.Errorf("%v: F16 bias = %v, want float32 [1 2]", tc.mode, got)
		}
		bytes := int64(4*2 + 4*4) // bias, c
		for _, w := range []Linear{a, b} {
			if w.Half != nil {
				bytes += 2 * 6
			} else {
				bytes += 4 * 6
			}
		}
		if got := l.WeightBytes(); got != bytes {
			t.Errorf("%v: WeightBytes %d, want %d", tc.mode, got, bytes)
		}
		if a.Half != nil && !slices.Equal(a.Half.Data(), f16) {
			t.Errorf("%v: F16 weight not kept as stored", tc.mode)
		}
		if b.Half != nil {
			for i, h := range b.Half.Data() {
				if h != safetensors.Float32ToHalf(f32[i]) {
					t.Fatalf("%v: b[%d] = %#04x, want %#04x (rounded to nearest)", tc.mode, i, h, safetensors.Float32ToHalf(f32[i]))
				}
			}
			if !slices.Equal(b.Half.Shape(), []int{3, 2}) {
				t.Errorf("shape %v", b.Half.Shape())
			}
		}
		if a.Weight.Valid() && !slices.Equal(a.Weight.Data(), halfData(f16)) {
			t.Errorf("%v: HalfNever did not convert the F16 weight exactly", tc.mode)
		}
	}

	// Problems are still reported in half modes.
	l := NewLoader(src, "toy", "m.", LoadOptions{Half: HalfAlways})
	LoadLinear(l, "a", 2, 3, true) // wrong shape
	LoadLinear(l, "z", 2, 3, false)
	if err := l.Finish(); err == nil {
		t.Error("misshapen and missing half weights not reported")
	}
}

func halfData(h []uint16) []float32 {
	out := make([]float32, len(h))
	weights.HalfToFloat32s(out, h)
	return out
}

// halfPair returns the same layer weight held as float16 and as the
// float32 tensor of its exact values.
func halfPair(t *testing.T, r *rand.Rand, pool *WeightPool, shape ...int) (*HalfTensor, tensor.Tensor) {
	t.Helper()
	h := randHalf(r, tensor.Numel(shape), 0.5)
	ht, err := NewHalfTensor(h, pool, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return ht, tensor.MustNew(halfData(h), shape...)
}

func TestHalfLayers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	e := ops.CPU()
	pool := new(WeightPool)
	lh, lw := halfPair(t, r, pool, 6, 5)
	ch, cw := halfPair(t, r, pool, 4, 3, 3, 3)
	bias := tensor.MustNew(randFloat(r, 4), 4)
	lin, linRef := Linear{Half: lh}, Linear{Weight: lw}
	conv := Conv2D{Half: ch, Bias: bias, Params: ops.Conv2DParams{Stride: 1, Pad: ops.Pad(1)}}
	convRef := Conv2D{Weight: cw, Bias: bias, Params: conv.Params}
	x := tensor.MustNew(randFloat(r, 2*7*5), 2, 7, 5)        // [B, T, In]
	img := tensor.MustNew(randFloat(r, 2*3*5*4), 2, 3, 5, 4) // [B, C, H, W]
	for range 3 {
		for _, c := range []struct {
			name      string
			got, want func() (tensor.Tensor, error)
		}{
			{"linear", func() (tensor.Tensor, error) { return lin.Forward(e, x) }, func() (tensor.Tensor, error) { return linRef.Forward(e, x) }},
			{"conv", func() (tensor.Tensor, error) { return conv.Forward(e, img) }, func() (tensor.Tensor, error) { return convRef.Forward(e, img) }},
		} {
			got, err := c.got()
			if err != nil {
				t.Fatal(err)
			}
			want, err := c.want()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Data(), want.Data()) || !tensor.SameShape(got.Shape(), want.Shape()) {
				t.Errorf("%s: half weight gives other values than its exact float32", c.name)
			}
		}
	}
	s := pool.Stats()
	if e.HalfGemm() { // the operators multiply the float16 values as stored
		if s.InUse != 0 || s.Allocated != 0 || s.Direct != 6 || s.Conversions() != 0 {
			t.Errorf("pool after 6 sequential calls: %+v, want 6 direct reads and no buffer", s)
		}
	} else if s.InUse != 0 || s.Idle != 1 || s.Allocated != 1 || s.Size != 4*3*3*3 || s.Unpooled != 0 {
		t.Errorf("pool after 6 sequential calls: %+v, want one buffer of 108 floats, idle", s)
	}
	// A shape error still returns the buffer.
	if _, err := lin.Forward(e, img); err == nil {
		t.Error("bad input accepted")
	}
	if s := pool.Stats(); s.InUse != 0 {
		t.Errorf("buffer not returned after an error: %+v", s)
	}
}

// With an input that requires grad, the converted weight must outlive the
// call (backward reads it), so it may not come from the pool: other layers
// borrowing pool buffers before backward must not change the gradient.
func TestHalfLayerGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	e := ops.CPU()
	pool := new(WeightPool)
	h1, w1 := halfPair(t, r, pool, 6, 5)
	h2, _ := halfPair(t, r, pool, 6, 5)
	xv := randFloat(r, 3*5)
	gy := randFloat(r, 3*6)
	grad := func(lin Linear, other *Linear) []float32 {
		x, err := tensor.NewParam(slices.Clone(xv), 3, 5)
		if err != nil {
			t.Fatal(err)
		}
		y, err := lin.Forward(e, x)
		if err != nil {
			t.Fatal(err)
		}
		if other != nil { // overwrite any pooled buffer
			for range 3 {
				if _, err := other.Forward(e, tensor.MustNew(randFloat(r, 5), 1, 5)); err != nil {
					t.Fatal(err)
				}
			}
		}
		tensor.AccGrad(y.Node(), slices.Clone(gy))
		if err := ag.Backward(y.Node()); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(x.Grad())
	}
	want := grad(Linear{Weight: w1}, nil)
	got := grad(Linear{Half: h1}, &Linear{Half: h2})
	if !slices.Equal(got, want) {
		t.Errorf("gradient through a half weight\n%v\nwant\n%v", got, want)
	}
	// The lazy weight borrows a pool buffer for its forward and its backward
	// read (tensor.Lender), the other layer one for each of its 3 forwards:
	// one buffer serves them all. Where the backend multiplies float16,
	// every read, the backward's too, takes the weight as stored.
	pooled, direct, buffers := 5, 0, 1
	if e.HalfGemm() {
		pooled, direct, buffers = 0, 5, 0
	}
	if s := pool.Stats(); s.Unpooled != 0 || s.Pooled != pooled || s.Direct != direct || s.Allocated != buffers || s.InUse != 0 {
		t.Errorf("pool: %+v, want %d pooled conversions in %d buffer(s), %d direct reads and nothing in use", s, pooled, buffers, direct)
	}
}

// Concurrent forwards share the pool (run with -race).
func TestHalfPoolConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	e := ops.CPU()
	pool := new(WeightPool)
	var layers, refs []Linear
	for i := range 4 {
		h, w := halfPair(t, r, pool, 8+i, 8)
		layers, refs = append(layers, Linear{Half: h}), append(refs, Linear{Weight: w})
	}
	x := tensor.MustNew(randFloat(r, 4*8), 4, 8)
	want := make([][]float32, len(layers))
	for i, l := range refs {
		y, err := l.Forward(e, x)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = y.Data()
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 4 {
		wg.Go(func() {
			for it := range 50 {
				i := it % len(layers)
				y, err := layers[i].Forward(e, x)
				if err != nil || !slices.Equal(y.Data(), want[i]) {
					errs <- "concurrent forward gave other values"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Fatal(msg)
	}
	if s := pool.Stats(); s.InUse != 0 || s.Idle > poolIdle || s.Allocated > 4 {
		t.Errorf("pool after concurrent use: %+v", s)
	}
}

func TestHalfTensorErrors(t *testing.T) {
	if _, err := NewHalfTensor(make([]uint16, 5), nil, 2, 3); err == nil {
		t.Error("wrong length accepted")
	}
	h, err := NewHalfTensor(make([]uint16, 6), nil, 2, 3, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := h.Reshape(2, 3); err != nil || !slices.Equal(v.Shape(), []int{2, 3}) || h.Bytes() != 12 {
		t.Errorf("Reshape: %v %v", v, err)
	}
	if _, err := h.Reshape(4, 2); err == nil {
		t.Error("bad reshape accepted")
	}
	w, release := h.Float32(nil, false) // no pool: a plain allocation
	release()
	if !slices.Equal(w.Shape(), []int{2, 3, 1, 1}) || w.Size() != 6 {
		t.Errorf("Float32 without pool: %v", w)
	}
}

func BenchmarkConvertHalf(b *testing.B) {
	const n = 1280 * 1280 * 9 // the UNet's 1280-wide 3x3 convolution weight
	r := rand.New(rand.NewPCG(1, 1))
	src := randHalf(r, n, 0.05)
	dst := make([]float32, n)
	e := ops.CPU()
	b.SetBytes(n * 2) // float16 bytes read
	for b.Loop() {
		ConvertHalf(e, dst, src)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/value")
}

func BenchmarkConvertHalfOHIW(b *testing.B) {
	const o, c = 1280, 1280 // the UNet's 1280-wide 3x3 convolution weight
	n := o * c * 9
	src := randHalf(rand.New(rand.NewPCG(1, 1)), n, 0.05)
	dst := make([]float32, n)
	e := ops.CPU()
	b.SetBytes(int64(n) * 2) // float16 bytes read
	for b.Loop() {
		ConvertHalfOHIW(e, dst, src, o, c, 3, 3)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/value")
}

// Operators whose backward passes run at once (an attention layer's
// projections) borrow more buffers than poolIdle: the extra ones are
// spares of the weight's size, kept for the next pass, not full-size
// buffers allocated afresh each time.
func TestWeightPoolSpares(t *testing.T) {
	pool := new(WeightPool)
	pool.reserve(1000)
	for pass := range 5 {
		var lent [][]float32
		for _, n := range []int{100, 100, 90, 100} { // four at once
			b := pool.get(n)
			if len(b) != n {
				t.Fatalf("pass %d: get(%d) gave %d values", pass, n, len(b))
			}
			lent = append(lent, b)
		}
		for _, b := range lent {
			pool.put(b)
		}
		if s := pool.Stats(); s.InUse != 0 || s.Allocated != 4 || s.Idle != poolIdle || s.Spares != 2 {
			t.Fatalf("pass %d: %+v, want two full-size buffers and two spares, reused", pass, s)
		}
	}
	// Spares are sized by powers of two (up to a full-size buffer) and
	// those beyond poolIdle full-size buffers' worth go, the smallest first.
	var lent [][]float32
	for range poolIdle {
		lent = append(lent, pool.get(1000))
	}
	for _, n := range []int{600, 700} {
		lent = append(lent, pool.get(n))
	}
	for _, b := range lent {
		pool.put(b)
	}
	if s := pool.Stats(); s.Idle != poolIdle || s.Spares != 2 || pool.spareN != 2000 {
		t.Errorf("after large spares: %+v with %d spare floats, want the two full-size spares kept", s, pool.spareN)
	}
}

// The gradient to the input through a float16 weight equals the one
// through its exact float32 copy for every layer that reads float16 as
// stored in its backward pass too (linears, token linears, 1x1 and
// small-image convolutions) and for one that converts it (a 3x3
// convolution on a larger image), on an engine that multiplies float16
// and on one that converts.
func TestHalfGradientsMatchFloat32(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	pool := new(WeightPool)
	lh, lw := halfPair(t, r, pool, 6, 5)
	c1h, c1w := halfPair(t, r, pool, 6, 5, 1, 1)
	c3h, c3w := halfPair(t, r, pool, 6, 5, 3, 3)
	p1 := ops.Conv2DParams{Stride: 1}
	p3 := ops.Conv2DParams{Stride: 1, Pad: ops.Pad(1)}
	type layer func(e *ops.Engine, x tensor.Tensor, half bool) (tensor.Tensor, error)
	pick := func(half bool, h *HalfTensor, w tensor.Tensor) (*HalfTensor, tensor.Tensor) {
		if half {
			return h, tensor.Tensor{}
		}
		return nil, w
	}
	for _, c := range []struct {
		name  string
		shape []int
		fn    layer
	}{
		{"linear", []int{2, 7, 5}, func(e *ops.Engine, x tensor.Tensor, half bool) (tensor.Tensor, error) {
			h, w := pick(half, lh, lw)
			return Linear{Half: h, Weight: w}.Forward(e, x)
		}},
		{"to tokens", []int{2, 5, 3, 4}, func(e *ops.Engine, x tensor.Tensor, half bool) (tensor.Tensor, error) {
			h, w := pick(half, lh, lw)
			return Linear{Half: h, Weight: w}.ForwardToTokens(e, x)
		}},
		{"from tokens", []int{2, 12, 5}, func(e *ops.Engine, x tensor.Tensor, half bool) (tensor.Tensor, error) {
			h, w := pick(half, lh, lw)
			return Linear{Half: h, Weight: w}.ForwardFromTokens(e, x, tensor.Tensor{}, 3, 4)
		}},
		{"conv 1x1", []int{2, 5, 3, 4}, func(e *ops.Engine, x tensor.Tensor, half bool) (tensor.Tensor, error) {
			h, w := pick(half, c1h, c1w)
			return Conv2D{Half: h, Weight: w, Params: p1}.Forward(e, x)
		}},
		{"conv 3x3 small", []int{2, 5, 4, 5}, func(e *ops.Engine, x tensor.Tensor, half bool) (tensor.Tensor, error) {
			h, w := pick(half, c3h, c3w)
			return Conv2D{Half: h, Weight: w, Params: p3}.Forward(e, x)
		}},
		{"conv 3x3 large", []int{1, 5, 12, 12}, func(e *ops.Engine, x tensor.Tensor, half bool) (tensor.Tensor, error) {
			h, w := pick(half, c3h, c3w)
			return Conv2D{Half: h, Weight: w, Params: p3}.Forward(e, x)
		}},
	} {
		xv := randFloat(r, tensor.Numel(c.shape))
		for _, e := range []*ops.Engine{ops.CPU(), convertingEngine()} {
			grad := func(half bool) []float32 {
				x, err := tensor.NewParam(slices.Clone(xv), c.shape...)
				if err != nil {
					t.Fatal(err)
				}
				y, err := c.fn(e, x, half)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				gy := make([]float32, y.Size())
				for i := range gy {
					gy[i] = float32(i%7) - 3
				}
				tensor.AccGrad(y.Node(), gy)
				if err := ag.Backward(y.Node()); err != nil {
					t.Fatal(err)
				}
				return slices.Clone(x.Grad())
			}
			got, want := grad(true), grad(false)
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("%s: gradients of %d and %d values", c.name, len(got), len(want))
			}
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("%s (HalfGemm %v): dx[%d] = %g through float16, %g through float32",
						c.name, e.HalfGemm(), i, got[i], want[i])
				}
			}
		}
	}
}
