package train

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/photos"
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// identityMetric is C⁻¹ = I of width d.
func identityMetric(t testing.TB, d int) edit.Metric {
	t.Helper()
	inv := make([]float64, d*d)
	for i := range d {
		inv[i*d+i] = 1
	}
	m, err := edit.NewDenseMetric(inv, d)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writePhotos writes n small generated photos (a bright disc on a
// coloured background, moving with i) and returns them.
func writePhotos(t testing.TB, n, size int) []photos.Photo {
	t.Helper()
	dir := t.TempDir()
	var out []photos.Photo
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, size+8*i, size))
		cx, cy, r := float64(size/2+4*i), float64(size/2), float64(size)/4
		for y := range size {
			for x := range size + 8*i {
				c := color.NRGBA{uint8(40 + 30*i), 90, 160, 255}
				if math.Hypot(float64(x)-cx, float64(y)-cy) < r {
					c = color.NRGBA{250, 210, 40, 255}
				}
				img.SetNRGBA(x, y, c)
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("photo%d.png", i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out = append(out, photos.Photo{Path: p})
	}
	return out
}

// tinyJob is a short run on the tiny golden model.
func tinyJob(t testing.TB, p *pipeline.Pipeline, steps int) Job {
	t.Helper()
	s, err := PresetSettings(Quick)
	if err != nil {
		t.Fatal(err)
	}
	s.Size, s.Steps, s.Batch, s.Micro = 32, steps, 2, 1
	return Job{
		Pipeline: p, Name: "disc", Class: "toy", Photos: writePhotos(t, 3, 40),
		Metric: identityMetric(t, p.CLIP.Config.HiddenSize), Settings: s,
	}
}

// TestTrainTiny trains a concept for a few dozen steps on the tiny
// golden model: the loss on fixed samples falls and the edit changes the
// render. (The tiny model is random, so whether its renders "move towards
// the photos" is not meaningful here; the loss on the photos is the check.)
func TestTrainTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on the tiny model")
	}
	p := tinyPipeline(t, blocks.HalfAsStored)
	job := tinyJob(t, p, 30)
	var steps int
	job.Progress = func(pr Progress) {
		if pr.Stage == StageTrain {
			steps++
		}
	}
	res, err := Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Check
	t.Logf("eval loss %.5f -> %.5f, render change %.4f, losses first %v last %v, %v",
		c.EvalStart, c.EvalEnd, c.Change, res.Losses[:3], res.Losses[len(res.Losses)-3:], res.Elapsed)
	if steps != 30 || len(res.Losses) != 30 {
		t.Errorf("%d progress reports, %d losses, want 30", steps, len(res.Losses))
	}
	if !(c.EvalEnd < c.EvalStart) || !(c.Change >= MinChange) {
		t.Errorf("check: %+v", c)
	}
	tc := res.Concept
	if len(tc.Layers) != len(p.UNet.CrossAttentions()) || len(tc.Embedding) != p.CLIP.Config.HiddenSize {
		t.Fatalf("concept shape: %d layers, embedding %d", len(tc.Layers), len(tc.Embedding))
	}
	// The embedding and o*_V moved; o*_K stayed W_K ē_super.
	table := p.CLIP.TokenEmbedding().Data()
	d := p.CLIP.Config.HiddenSize
	if relDiff(tc.Embedding, table[tc.SuperclassToken*d:(tc.SuperclassToken+1)*d]) < 1e-3 {
		t.Error("the embedding did not move from the superordinate word's")
	}
	ca := p.UNet.CrossAttentions()
	for l, ly := range tc.Layers {
		if ly.Name != ca[l].Name || len(ly.OutK) != ca[l].ToK.Dim(0) || len(ly.OutV) != ca[l].ToV.Dim(0) {
			t.Fatalf("layer %d: %s, %d, %d", l, ly.Name, len(ly.OutK), len(ly.OutV))
		}
	}
}

func TestRunErrors(t *testing.T) {
	p := tinyPipeline(t, blocks.HalfAsStored)
	job := tinyJob(t, p, 2)
	bad := job
	bad.Class = "teddy bear"
	if _, err := Run(context.Background(), bad); err == nil {
		t.Error("two-word class: no error")
	}
	bad = job
	bad.Metric = nil
	if _, err := Run(context.Background(), bad); err == nil {
		t.Error("no metric: no error")
	}
	bad = job
	bad.Settings.Size = 33
	if _, err := Run(context.Background(), bad); err == nil {
		t.Error("odd size: no error")
	}
	bad = job
	bad.Photos = nil
	if _, err := Run(context.Background(), bad); !errors.Is(err, photos.ErrNoPhotos) {
		t.Errorf("no photos: %v", err)
	}
}
