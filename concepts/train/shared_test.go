package train

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// A training pass and plain generations share one loaded model at the
// same time without seeing each other: the plain UNet output is
// bit-identical to the one computed alone.
func TestTrainingSharesModel(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the tiny model concurrently")
	}
	p := tinyPipeline(t, 0)
	job := tinyJob(t, p, 1)
	ctx := context.Background()
	tr, err := newTrainer(ctx, job, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	zt, ts, _, _, ids, _, err := tr.batch(tr.draw(5, 0, 1), tr.classID)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encodeText(p.CLIP, ids, 1, tensor.Tensor{})
	if err != nil {
		t.Fatal(err)
	}
	alone, err := predictNoise(ctx, p.UNet, zt, ts, enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(alone.Data())

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		gEmb := make([]float32, tr.d)
		gV := make([][]float32, len(tr.layers))
		for l := range gV {
			gV[l] = make([]float32, len(tr.st.OutV[l]))
		}
		for range 2 {
			if _, err := tr.pass(ctx, tr.draw(1, 0, 2), 1, gEmb, gV); err != nil {
				errs <- err
				return
			}
		}
	}()
	for range 3 {
		e2, err := encodeText(p.CLIP, ids, 1, tensor.Tensor{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := predictNoise(ctx, p.UNet, zt, ts, e2, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Data(), want) {
			t.Fatalf("a plain forward during training differs (max diff %g)", relDiff(got.Data(), want))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
