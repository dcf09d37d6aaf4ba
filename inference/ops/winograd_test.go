package ops

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// plainGemm hides the backend's APacker: the Winograd path then runs its
// GEMMs through Gemm, as on a BLAS backend.
type plainGemm struct{ backend.Backend }

// TestWinogradPlainGemm forces the Winograd path, forward and input
// gradient, onto a backend without APacker, which Conv2D itself does not
// pick it for.
func TestWinogradPlainGemm(t *testing.T) {
	e := NewEngine(plainGemm{testEngine().B})
	if e.winograd() {
		t.Fatal("Winograd on by default without APacker")
	}
	r := newRand(3)
	for _, c := range convCases {
		x, w := frozen(r, c.x...), frozen(r, c.w...)
		g, err := conv2dGeom(x, w, tensor.Tensor{}, c.p)
		if err != nil {
			t.Fatal(err)
		}
		if !winogradFits(g) {
			continue
		}
		want, _ := refConv2D(x.Data(), c.x, w.Data(), c.w, nil, c.p)
		xp := param(t, r, c.x...)
		for _, path := range []convPath{pathWinograd, pathWinogradRows} {
			y := must(t)(conv2dPath(e, x, w, tensor.Tensor{}, c.p, path))
			checkClose(t, fmt.Sprintf("%v path %d", c, path), y.Data(), want, 1e-6*float64(c.w[1]*9), 1e-5)
			// a frozen weight: the input gradient takes the Winograd path
			gradCheck(t, func() (tensor.Tensor, error) { return conv2dPath(e, xp, w, tensor.Tensor{}, c.p, path) },
				named{"x", xp}, named{"frozen w", w})
		}
	}
}

// TestWinogradError measures the Winograd path's float32 error at SD-like
// values (320 channels, weights of std 0.03 as in trained SD 3x3 layers,
// inputs of std 1) against the float64 reference, beside the row path's,
// on an odd-sized map (cut tiles on two sides). F(2x2, 3x3)'s transforms
// only add, subtract and halve, so its error should stay within a few
// times the direct path's.
func TestWinogradError(t *testing.T) {
	if testing.Short() {
		t.Skip("float64 reference over 320x320 channels")
	}
	const c, h, w = 320, 15, 17
	e := testEngine()
	r := newRand(7)
	x := frozen(r, 1, c, h, w)
	wd := randn(r, c*c*9)
	for i := range wd {
		wd[i] *= 0.03
	}
	wt := tensor.MustNew(wd, c, c, 3, 3)
	b := frozen(r, c)
	p := Conv2DParams{Pad: Pad(1)}
	want, _ := refConv2D(x.Data(), []int{1, c, h, w}, wd, []int{c, c, 3, 3}, b.Data(), p)
	errs := func(path convPath) (maxAbs, maxRel float64) {
		y := must(t)(conv2dPath(e, x, wt, b, p, path)).Data()
		for i, v := range want {
			d := math.Abs(float64(y[i]) - v)
			maxAbs = max(maxAbs, d)
			maxRel = max(maxRel, d/max(math.Abs(v), 1e-3))
		}
		return maxAbs, maxRel
	}
	rowsAbs, rowsRel := errs(pathRows)
	winoAbs, winoRel := errs(pathWinograd)
	t.Logf("max abs / rel error: rows %.3g / %.3g, Winograd %.3g / %.3g", rowsAbs, rowsRel, winoAbs, winoRel)
	if winoAbs > 1e-5 || winoAbs > 8*rowsAbs {
		t.Errorf("Winograd max abs error %.3g, want <= 1e-5 and <= 8x the row path's %.3g", winoAbs, rowsAbs)
	}
}

// TestWinogradConcurrent runs Winograd convolutions of two sizes from
// several goroutines on one engine: one holds its working memory, the
// others fall back to scratch, and every result matches the reference.
func TestWinogradConcurrent(t *testing.T) {
	e := testEngine()
	r := newRand(5)
	p := Conv2DParams{Pad: Pad(1)}
	type conv struct {
		x, w tensor.Tensor
		want []float64
	}
	var convs []conv
	for _, c := range []int{8, 19} {
		x, w := frozen(r, 2, c, 9, 10), frozen(r, c+1, c, 3, 3)
		want, _ := refConv2D(x.Data(), x.Shape(), w.Data(), w.Shape(), nil, p)
		convs = append(convs, conv{x, w, want})
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c := convs[i%len(convs)]
			for range 5 {
				y, err := conv2dPath(e, c.x, c.w, tensor.Tensor{}, p, pathWinograd)
				if err != nil {
					t.Error(err)
					return
				}
				checkClose(t, fmt.Sprintf("goroutine %d", i), y.Data(), c.want, 1e-6*float64(c.w.Dim(1)*9), 1e-5)
			}
		})
	}
	wg.Wait()
}
