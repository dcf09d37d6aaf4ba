package tinysd

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/internal/bpe"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// BenchmarkPreview is one image at the default model's size (32x32, 20
// DDIM steps, CFG 7.5) with the default model's shapes (random weights):
// the target is at most 1 s on 2 cores. assets' BenchmarkDefaultModel
// times the trained model itself.
func BenchmarkPreview(b *testing.B) {
	_, vj, mt := smallVocab(b)
	c := Default(bpe.DefaultSize, 32)
	c.VAE.ScaleFactor = 1
	w, err := c.Init(1)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "model")
	if err := c.Export(dir, w, vj, mt); err != nil {
		b.Fatal(err)
	}
	p, err := pipeline.Load(context.Background(), dir, pipeline.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	req := pipeline.Request{Prompt: "cat face on a red background", Seed: 1, Steps: 20, CFG: 7.5, Width: 32, Height: 32}
	b.ResetTimer()
	for range b.N {
		if _, err := p.Generate(context.Background(), req, nil); err != nil {
			b.Fatal(err)
		}
	}
}
