package ops

import (
	"fmt"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/ops/internal/convkern"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// refConv2D is a plain-loop float64 convolution: x [B, C, H, W],
// w [O, C, KH, KW], b [O] or nil -> [B, O, Ho, Wo].
func refConv2D(x []float32, xs []int, w []float32, ws []int, b []float32, p Conv2DParams) ([]float64, []int) {
	B, C, H, W := xs[0], xs[1], xs[2], xs[3]
	O, KH, KW := ws[0], ws[2], ws[3]
	s := max(p.Stride, 1)
	pt, pb, pl, pr := p.Pad[0], p.Pad[1], p.Pad[2], p.Pad[3]
	Ho, Wo := (H+pt+pb-KH)/s+1, (W+pl+pr-KW)/s+1
	y := make([]float64, B*O*Ho*Wo)
	for n := 0; n < B; n++ {
		for o := 0; o < O; o++ {
			for i := 0; i < Ho; i++ {
				for j := 0; j < Wo; j++ {
					var acc float64
					if b != nil {
						acc = float64(b[o])
					}
					for c := 0; c < C; c++ {
						for kh := 0; kh < KH; kh++ {
							for kw := 0; kw < KW; kw++ {
								ih, iw := i*s-pt+kh, j*s-pl+kw
								if ih < 0 || ih >= H || iw < 0 || iw >= W {
									continue
								}
								acc += float64(x[((n*C+c)*H+ih)*W+iw]) * float64(w[((o*C+c)*KH+kh)*KW+kw])
							}
						}
					}
					y[((n*O+o)*Ho+i)*Wo+j] = acc
				}
			}
		}
	}
	return y, []int{B, O, Ho, Wo}
}

type convCase struct {
	x, w []int // [B, C, H, W], [O, C, KH, KW]
	p    Conv2DParams
	bias bool
}

func (c convCase) String() string {
	return fmt.Sprintf("x%v_w%v_s%d_p%v_b%v", c.x, c.w, c.p.Stride, c.p.Pad, c.bias)
}

var convCases = []convCase{
	{x: []int{2, 3, 7, 6}, w: []int{5, 3, 3, 3}, p: Conv2DParams{Pad: Pad(1)}, bias: true},
	{x: []int{1, 33, 5, 7}, w: []int{4, 33, 3, 3}, p: Conv2DParams{Pad: [4]int{1, 0, 2, 1}}, bias: true},
	{x: []int{2, 34, 6, 5}, w: []int{3, 34, 3, 3}, p: Conv2DParams{Stride: 1}}, // no padding: slack read
	{x: []int{2, 5, 9, 7}, w: []int{3, 5, 3, 3}, p: Conv2DParams{Stride: 2, Pad: Pad(1)}, bias: true},
	{x: []int{1, 4, 8, 8}, w: []int{6, 4, 3, 3}, p: Conv2DParams{Stride: 2, Pad: [4]int{0, 1, 0, 1}}}, // VAE downsample
	{x: []int{2, 7, 5, 3}, w: []int{6, 7, 1, 1}, bias: true},                                          // 1x1
	{x: []int{1, 6, 5, 4}, w: []int{2, 6, 1, 1}, p: Conv2DParams{Stride: 2}, bias: true},
	{x: []int{1, 3, 4, 5}, w: []int{2, 3, 1, 1}, p: Conv2DParams{Pad: [4]int{1, 0, 0, 2}}},
	{x: []int{2, 3, 6, 5}, w: []int{4, 3, 1, 3}, p: Conv2DParams{Pad: [4]int{0, 0, 1, 1}}, bias: true},
	{x: []int{1, 2, 3, 3}, w: []int{3, 2, 3, 3}, p: Conv2DParams{Stride: 3, Pad: Pad(2)}},
	{x: []int{3, 40, 4, 4}, w: []int{5, 40, 3, 3}, p: Conv2DParams{Pad: Pad(1)}, bias: true}, // batched: pairs leave one
	// Winograd edge cases: 1x1 and 1-row maps, odd sizes (cut tiles),
	// rows of more than 16 tiles (the vector kernels' groups plus a rest).
	{x: []int{2, 5, 1, 1}, w: []int{7, 5, 3, 3}, p: Conv2DParams{Pad: Pad(1)}, bias: true},
	{x: []int{1, 3, 1, 5}, w: []int{2, 3, 3, 3}, p: Conv2DParams{Pad: Pad(1)}},
	{x: []int{3, 17, 3, 2}, w: []int{9, 17, 3, 3}, p: Conv2DParams{Pad: [4]int{2, 0, 1, 2}}, bias: true},
	{x: []int{2, 3, 5, 37}, w: []int{4, 3, 3, 3}, p: Conv2DParams{Pad: Pad(1)}, bias: true},
	{x: []int{1, 2, 4, 70}, w: []int{3, 2, 3, 3}, p: Conv2DParams{Pad: [4]int{0, 1, 1, 0}}},
	{x: []int{2, 3, 6, 5}, w: []int{31, 3, 3, 3}, p: Conv2DParams{Pad: Pad(1)}, bias: true}, // filter packed in chunks
}

// pathIm2colRows is the im2col path one output row per chunk,
// pathRowsChunked the row path with one-row chunks, pathBatchedOne and
// pathBatchedPairs the batched path one and two images at a time, and
// pathWinogradRows the Winograd path one tile row per block (and its
// filter packed in the smallest chunks of output channels).
const (
	pathIm2colRows   convPath = -1
	pathRowsChunked  convPath = -2
	pathBatchedOne   convPath = -3
	pathBatchedPairs convPath = -4
	pathWinogradRows convPath = -5
)

// convPaths lists the paths valid for a case; Conv2D's own pick is among them.
func convPaths(g convkern.Geom) []convPath {
	paths := []convPath{pathIm2col, pathIm2colRows, pathBatched, pathBatchedOne, pathBatchedPairs}
	if g.S == 1 {
		paths = append(paths, pathRows, pathRowsChunked)
	}
	if pathOf(g, true) == pathDirect {
		paths = append(paths, pathDirect)
	}
	if winogradFits(g) {
		paths = append(paths, pathWinograd, pathWinogradRows)
	}
	return paths
}

// conv2dPath is Conv2D forced onto one path.
func conv2dPath(e *Engine, x, w, b tensor.Tensor, p Conv2DParams, path convPath) (tensor.Tensor, error) {
	g, err := conv2dGeom(x, w, b, p)
	if err != nil {
		return tensor.Tensor{}, err
	}
	f := &conv2d{e: e, x: x, w: w, b: b, g: g}
	f.force(path)
	return Run(f, []int{g.B, g.O, g.Ho, g.Wo}, AnyGrad(x, w, b))
}

// force sets f's path, and the budget the test-only paths stand for.
func (f *conv2d) force(path convPath) {
	f.path = path
	switch path {
	case pathIm2colRows:
		f.path, f.budget = pathIm2col, 1
	case pathRowsChunked:
		f.path, f.budget = pathRows, 1
	case pathBatchedOne:
		f.path, f.budget = pathBatched, 1
	case pathBatchedPairs:
		f.path, f.budget = pathBatched, 2*f.g.C*f.g.Taps()*f.g.Ho*f.g.Wo
	case pathWinogradRows:
		f.path, f.budget = pathWinograd, 1
	}
}

func TestConv2DForward(t *testing.T) {
	e := testEngine()
	r := newRand(1)
	for _, c := range convCases {
		x, w := frozen(r, c.x...), frozen(r, c.w...)
		var b tensor.Tensor
		var bias []float32
		if c.bias {
			b = frozen(r, c.w[0])
			bias = b.Data()
		}
		want, wantShape := refConv2D(x.Data(), c.x, w.Data(), c.w, bias, c.p)
		g, err := conv2dGeom(x, w, b, c.p)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		for _, path := range convPaths(g) {
			y := must(t)(conv2dPath(e, x, w, b, c.p, path))
			if !tensor.SameShape(y.Shape(), wantShape) {
				t.Fatalf("%v path %d: shape %v, want %v", c, path, y.Shape(), wantShape)
			}
			k := float64(c.w[1] * c.w[2] * c.w[3])
			checkClose(t, fmt.Sprintf("%v path %d", c, path), y.Data(), want, 1e-6*k, 1e-5)
		}
		y := must(t)(e.Conv2D(x, w, b, c.p)) // the default path
		checkClose(t, c.String(), y.Data(), want, 1e-6*float64(c.w[1]*c.w[2]*c.w[3]), 1e-5)
	}
}

func TestConv2DGrad(t *testing.T) {
	e := testEngine()
	r := newRand(2)
	for _, c := range convCases {
		x, w := param(t, r, c.x...), param(t, r, c.w...)
		ins := []named{{"x", x}, {"w", w}}
		var b tensor.Tensor
		if c.bias {
			b = param(t, r, c.w[0])
			ins = append(ins, named{"b", b})
		}
		g, _ := conv2dGeom(x, w, b, c.p)
		for _, path := range convPaths(g) {
			t.Run(fmt.Sprintf("%v/path%d", c, path), func(t *testing.T) {
				gradCheck(t, func() (tensor.Tensor, error) { return conv2dPath(e, x, w, b, c.p, path) }, ins...)
				// frozen weight (and bias): only x gets a gradient
				wf := tensor.MustNew(w.Data(), c.w...)
				gradCheck(t, func() (tensor.Tensor, error) { return conv2dPath(e, x, wf, tensor.Tensor{}, c.p, path) },
					named{"x", x}, named{"frozen w", wf})
				// frozen input: only the weight gets a gradient
				xf := tensor.MustNew(x.Data(), c.x...)
				gradCheck(t, func() (tensor.Tensor, error) { return conv2dPath(e, xf, w, tensor.Tensor{}, c.p, path) },
					named{"frozen x", xf}, named{"w", w})
			})
		}
	}
}

func TestConv2DShapeErrors(t *testing.T) {
	e := testEngine()
	r := newRand(3)
	cases := []struct {
		x, w, b []int
		p       Conv2DParams
	}{
		{x: []int{1, 3, 8}, w: []int{4, 3, 3, 3}},
		{x: []int{1, 3, 8, 8}, w: []int{4, 3, 3}},
		{x: []int{1, 3, 8, 8}, w: []int{4, 2, 3, 3}},
		{x: []int{1, 3, 8, 8}, w: []int{4, 3, 3, 3}, b: []int{5}},
		{x: []int{1, 3, 8, 8}, w: []int{4, 3, 3, 3}, b: []int{4, 1}},
		{x: []int{1, 3, 2, 8}, w: []int{4, 3, 3, 3}},
		{x: []int{1, 3, 8, 8}, w: []int{4, 3, 3, 3}, p: Conv2DParams{Stride: -1}},
		{x: []int{1, 3, 8, 8}, w: []int{4, 3, 3, 3}, p: Conv2DParams{Pad: [4]int{0, -1, 0, 0}}},
	}
	for _, c := range cases {
		x, w := frozen(r, c.x...), frozen(r, c.w...)
		var b tensor.Tensor
		if c.b != nil {
			b = frozen(r, c.b...)
		}
		_, err := e.Conv2D(x, w, b, c.p)
		if err == nil {
			t.Errorf("x%v w%v b%v %+v: no error", c.x, c.w, c.b, c.p)
			continue
		}
		msg := err.Error()
		a, bb := fmt.Sprint(c.w), fmt.Sprint(c.x)
		if c.b != nil && !strings.Contains(msg, fmt.Sprint(c.x)) {
			bb = fmt.Sprint(c.b)
		}
		if !strings.Contains(msg, a) || !strings.Contains(msg, bb) || !strings.HasPrefix(msg, "ops: conv2d") {
			t.Errorf("x%v w%v b%v: error %q does not name both shapes", c.x, c.w, c.b, msg)
		}
	}
}

// TestEngineLiteral checks that an Engine built as a literal (no scratch
// pool) works.
func TestEngineLiteral(t *testing.T) {
	e := &Engine{B: testEngine().B}
	r := newRand(4)
	c := convCases[1]
	x, w := param(t, r, c.x...), param(t, r, c.w...)
	want, _ := refConv2D(x.Data(), c.x, w.Data(), c.w, nil, c.p)
	y := must(t)(e.Conv2D(x, w, tensor.Tensor{}, c.p))
	checkClose(t, "conv2d on an Engine literal", y.Data(), want, 1e-4, 1e-5)
	gradCheck(t, func() (tensor.Tensor, error) { return e.Conv2D(x, w, tensor.Tensor{}, c.p) }, named{"x", x}, named{"w", w})
}

// permuteOHIW reorders w [O, C, KH, KW] into a new [O, KH, C, KW] tensor
// (requiring grad when w does), with plain loops.
func permuteOHIW(t *testing.T, w tensor.Tensor) tensor.Tensor {
	t.Helper()
	O, C, KH, KW := w.Dim(0), w.Dim(1), w.Dim(2), w.Dim(3)
	src, dst := w.Data(), make([]float32, w.Size())
	for o := 0; o < O; o++ {
		for c := 0; c < C; c++ {
			for kh := 0; kh < KH; kh++ {
				for kw := 0; kw < KW; kw++ {
					dst[((o*KH+kh)*C+c)*KW+kw] = src[((o*C+c)*KH+kh)*KW+kw]
				}
			}
		}
	}
	if w.RequiresGrad() {
		p, err := tensor.NewParam(dst, O, KH, C, KW)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return tensor.MustNew(dst, O, KH, C, KW)
}

// conv2dAddPath is Conv2DAdd forced onto one path.
func conv2dAddPath(e *Engine, x, w, b, r tensor.Tensor, p Conv2DParams, path convPath) (tensor.Tensor, error) {
	g, err := conv2dGeom(x, w, b, p)
	if err != nil {
		return tensor.Tensor{}, err
	}
	f := &conv2d{e: e, x: x, w: w, b: b, r: r, g: g, layout: p.Layout}
	f.force(path)
	return Run(f, []int{g.B, g.O, g.Ho, g.Wo}, AnyGrad(x, w, b, r))
}

// TestConv2DLayoutResidual checks the OHIW weight layout and the fused
// residual of Conv2DAdd on every path against the float64 reference.
func TestConv2DLayoutResidual(t *testing.T) {
	e := testEngine()
	rng := newRand(5)
	for _, c := range convCases {
		x, w := frozen(rng, c.x...), frozen(rng, c.w...)
		var b tensor.Tensor
		var bias []float32
		if c.bias {
			b = frozen(rng, c.w[0])
			bias = b.Data()
		}
		want, shape := refConv2D(x.Data(), c.x, w.Data(), c.w, bias, c.p)
		res := frozen(rng, shape...)
		wantAdd := make([]float64, len(want))
		for i := range want {
			wantAdd[i] = want[i] + float64(res.Data()[i])
		}
		po := c.p
		po.Layout = OHIW
		wo := permuteOHIW(t, w)
		g, err := conv2dGeom(x, wo, b, po)
		if err != nil {
			t.Fatalf("%v OHIW: %v", c, err)
		}
		k := float64(c.w[1] * c.w[2] * c.w[3])
		for _, path := range convPaths(g) {
			y := must(t)(conv2dAddPath(e, x, wo, b, tensor.Tensor{}, po, path))
			checkClose(t, fmt.Sprintf("%v OHIW path %d", c, path), y.Data(), want, 1e-6*k, 1e-5)
			y = must(t)(conv2dAddPath(e, x, w, b, res, c.p, path))
			checkClose(t, fmt.Sprintf("%v +r path %d", c, path), y.Data(), wantAdd, 1e-6*k, 1e-5)
		}
		y := must(t)(e.Conv2DAdd(x, wo, tensor.Tensor{}, res, po))
		wantNB, _ := refConv2D(x.Data(), c.x, w.Data(), c.w, nil, c.p)
		for i := range wantNB {
			wantNB[i] += float64(res.Data()[i])
		}
		checkClose(t, fmt.Sprintf("%v OHIW +r, no bias", c), y.Data(), wantNB, 1e-6*k, 1e-5)
	}
}

func TestConv2DLayoutResidualGrad(t *testing.T) {
	e := testEngine()
	rng := newRand(6)
	for _, c := range convCases {
		x, w := param(t, rng, c.x...), param(t, rng, c.w...)
		po := c.p
		po.Layout = OHIW
		wo := permuteOHIW(t, w)
		var b tensor.Tensor
		if c.bias {
			b = param(t, rng, c.w[0])
		}
		g, _ := conv2dGeom(x, w, b, c.p)
		res := param(t, rng, g.B, g.O, g.Ho, g.Wo)
		for _, path := range convPaths(g) {
			t.Run(fmt.Sprintf("%v/path%d", c, path), func(t *testing.T) {
				ins := []named{{"x", x}, {"w ohiw", wo}, {"r", res}}
				if c.bias {
					ins = append(ins, named{"b", b})
				}
				gradCheck(t, func() (tensor.Tensor, error) { return conv2dAddPath(e, x, wo, b, res, po, path) }, ins...)
				// frozen residual, OIHW weight
				rf := tensor.MustNew(res.Data(), res.Shape()...)
				gradCheck(t, func() (tensor.Tensor, error) { return conv2dAddPath(e, x, w, b, rf, c.p, path) },
					named{"x", x}, named{"w", w}, named{"frozen r", rf})
				// frozen OHIW weight: only x gets a gradient
				wf := tensor.MustNew(wo.Data(), wo.Shape()...)
				gradCheck(t, func() (tensor.Tensor, error) { return conv2dAddPath(e, x, wf, tensor.Tensor{}, rf, po, path) },
					named{"x", x}, named{"frozen w ohiw", wf}, named{"frozen r", rf})
			})
		}
	}
}

// pathOf runs small images through the batched path (one GEMM for the
// batch, the weight packed once), alone or in a batch, larger 3x3 stride-1
// ones with enough channels through the Winograd path, and the rest
// through the per-image paths.
func TestConv2DPathOf(t *testing.T) {
	geom := func(b, c, side int) convkern.Geom {
		return convkern.Geom{B: b, C: c, H: side, W: side, O: c, KH: 3, KW: 3, S: 1, PT: 1, PB: 1, PL: 1, PR: 1, Ho: side, Wo: side}
	}
	for _, tc := range []struct {
		g    convkern.Geom
		want convPath
	}{
		{geom(2, 1280, 4), pathBatched}, {geom(2, 2560, 8), pathBatched}, {geom(1, 1280, 4), pathBatched},
		{geom(2, 320, 32), pathWinograd}, {geom(2, 8, 9), pathIm2col}, {geom(1, 640, 16), pathRows},
		{geom(4, 640, 16), pathRows}, {geom(1, 640, 32), pathWinograd},
		{geom(1, 16, 32), pathIm2col}, {geom(1, 3, 512), pathIm2col}, {geom(1, 128, 512), pathWinograd},
		{geom(2, 1280, 16), pathRows}, {geom(2, 1280, 32), pathWinograd},
		{convkern.Geom{B: 1, C: 2560, H: 32, W: 32, O: 1280, KH: 3, KW: 3, S: 1, PT: 1, PB: 1, PL: 1, PR: 1, Ho: 32, Wo: 32}, pathRows},
	} {
		if got := pathOf(tc.g, true); got != tc.want {
			t.Errorf("B=%d C=%d %dx%d: path %d, want %d", tc.g.B, tc.g.C, tc.g.H, tc.g.W, got, tc.want)
		}
	}
	if got := pathOf(geom(1, 320, 64), false); got != pathRows {
		t.Errorf("Winograd off: path %d, want the row path %d", got, pathRows)
	}
}
