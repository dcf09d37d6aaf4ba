package train

import (
	"context"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

func TestMaskWeights(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 16, 16))
	for y := range 16 {
		for x := range 8 { // subject on the left half, at half brightness
			m.SetGray(x, y, color.Gray{128})
		}
	}
	w := maskWeights(m, false, 4, 4, 0.1)
	if w[0] != 1 || w[3] != 0.1 || w[4*3] != 1 || w[4*3+3] != 0.1 {
		t.Errorf("weights %v: want 1 on the left (normalised by the max), 0.1 on the right", w)
	}
	f := maskWeights(m, true, 4, 4, 0)
	if f[0] != 0 || f[3] != 1 {
		t.Errorf("flipped weights %v", f)
	}
	empty := maskWeights(image.NewGray(image.Rect(0, 0, 8, 8)), false, 2, 2, 0.25)
	for _, v := range empty {
		if v != 0.25 {
			t.Fatalf("an empty mask gives %v, want the floor everywhere", empty)
		}
	}
}

// A job with a mask for its first photo weights that photo's views (and
// their mirrors) and leaves the others at 1.
func TestMaskedBatch(t *testing.T) {
	p := tinyPipeline(t, 0)
	job := tinyJob(t, p, 1)
	m := image.NewGray(image.Rect(0, 0, 40, 40))
	for y := range 40 {
		for x := range 20 {
			m.SetGray(x, y, color.Gray{255})
		}
	}
	job.Masks = []image.Image{m, nil, nil}
	tr, err := newTrainer(context.Background(), job, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.views) != 6 || tr.views[0].weight == nil || tr.views[1].weight == nil || tr.views[2].weight != nil {
		t.Fatalf("views: %d, weights set %v %v %v", len(tr.views), tr.views[0].weight != nil, tr.views[1].weight != nil, tr.views[2].weight != nil)
	}
	hw := tr.latent[1] * tr.latent[2]
	w0 := tr.views[0].weight
	if w0[0] != 1 || w0[tr.latent[2]-1] != float32(job.Settings.MaskFloor) {
		t.Errorf("mask weights row 0: %v", w0[:tr.latent[2]])
	}
	if f := tr.views[1].weight; f[0] != w0[tr.latent[2]-1] || f[tr.latent[2]-1] != w0[0] {
		t.Error("the mirrored view's weights are not mirrored")
	}
	ss := []sample{{view: 0, latentNoise: make([]float32, tr.latent[0]*hw), eps: make([]float32, tr.latent[0]*hw)},
		{view: 2, latentNoise: make([]float32, tr.latent[0]*hw), eps: make([]float32, tr.latent[0]*hw)}}
	_, _, _, wts, _, _, err := tr.batch(ss, tr.concept)
	if err != nil {
		t.Fatal(err)
	}
	n := tr.latent[0] * hw
	if len(wts) != 2*n || wts[hw] != w0[0] || wts[n] != 1 || wts[2*n-1] != 1 {
		t.Errorf("batch weights: %d values", len(wts))
	}
	job.Masks = []image.Image{m}
	if _, err := Run(context.Background(), job); err == nil {
		t.Error("1 mask for 3 photos: no error")
	}
}

// classAttention equals the runtime's attention with values that are one
// only at the class token (its output is then that token's attention
// weight in every channel of a head).
func TestClassAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, tk, inner, heads, j = 6, 5, 8, 2, 3
	q, k := normals(r, n*inner), normals(r, tk*inner)
	v := make([]float32, tk*inner)
	for i := range inner {
		v[j*inner+i] = 1
	}
	e := ops.CPU()
	o, err := e.Attention(tensor.MustNew(q, 1, n, inner), tensor.MustNew(k, 1, tk, inner), tensor.MustNew(v, 1, tk, inner),
		heads, float32(1/math.Sqrt(inner/heads)), false)
	if err != nil {
		t.Fatal(err)
	}
	got := classAttention(q, k, n, tk, inner, heads, j)
	od := o.Data()
	for p := range n {
		var want float64
		for i := range inner {
			want += float64(od[p*inner+i]) / inner
		}
		if math.Abs(got[p]-want) > 1e-5 {
			t.Errorf("pixel %d: %g, runtime attention %g", p, got[p], want)
		}
	}
}

// With AttentionMask, every view without a given mask gets weights from
// the model's attention: in [floor, 1] with a maximum of 1.
func TestAttentionMaskViews(t *testing.T) {
	p := tinyPipeline(t, 0)
	job := tinyJob(t, p, 1)
	job.Settings.AttentionMask = true
	tr, err := newTrainer(context.Background(), job, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range tr.views {
		if len(v.weight) != tr.latent[1]*tr.latent[2] {
			t.Fatalf("view %d: %d weights", i, len(v.weight))
		}
		mx, mn := float32(0), float32(2)
		for _, w := range v.weight {
			mx, mn = max(mx, w), min(mn, w)
		}
		if mx != 1 || mn < float32(job.Settings.MaskFloor) {
			t.Errorf("view %d: weights in [%g, %g]", i, mn, mx)
		}
	}
	if relDiff(tr.views[0].weight, tr.views[2].weight) == 0 {
		t.Error("two different photos got the same attention mask")
	}
}
