package train

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/blocks"
)

// TestPassGradient checks a training pass's gradients of the loss with
// respect to the concept embedding and to o*_V (through the edit, the
// frozen UNet and the frozen text encoder) against central finite
// differences, with i* held fixed (EMA decay 1) so the loss is a function
// of those parameters alone.
func TestPassGradient(t *testing.T) {
	if testing.Short() {
		t.Skip("backward through the tiny models")
	}
	p := tinyPipeline(t, blocks.HalfAsStored)
	job := tinyJob(t, p, 1)
	ctx := context.Background()
	tr, err := newTrainer(ctx, job, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tr.s.EMA = 1
	ss := tr.draw(3, 0, 2)
	gEmb := make([]float32, tr.d)
	gV := make([][]float32, len(tr.layers))
	for l := range gV {
		gV[l] = make([]float32, len(tr.st.OutV[l]))
	}
	if _, err := tr.pass(ctx, ss, 1, gEmb, gV); err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		sink := make([]float32, tr.d)
		sinkV := make([][]float32, len(gV))
		for l := range sinkV {
			sinkV[l] = make([]float32, len(gV[l]))
		}
		l, err := tr.pass(ctx, ss, 1, sink, sinkV)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	check := func(name string, v []float32, g []float32, idx []int) {
		const h = 1e-2
		for _, i := range idx {
			old := v[i]
			v[i] = old + h
			up := loss()
			v[i] = old - h
			down := loss()
			v[i] = old
			fd := (up - down) / (2 * h)
			if math.Abs(fd-float64(g[i])) > 3e-2*math.Abs(fd)+1e-5 {
				t.Errorf("%s[%d]: gradient %g, finite difference %g", name, i, g[i], fd)
			}
		}
	}
	check("embedding", tr.st.Embedding, gEmb, []int{0, 17, tr.d - 1})
	last := len(gV) - 1
	check("o*_V[0]", tr.st.OutV[0], gV[0], []int{0, len(gV[0]) / 2})
	check("o*_V[last]", tr.st.OutV[last], gV[last], []int{1, len(gV[last]) - 1})
}
