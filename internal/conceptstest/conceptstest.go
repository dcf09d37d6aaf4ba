// Package conceptstest makes concept files for tests: one made for a
// loaded model the way training starts a concept, and a small one for
// library tests that need no model.
package conceptstest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Concept returns a concept for p as training starts one (PERFUSION.md
// §6.3): the embedding and i* from the superclass word's encoding in "a
// photo of a SUPER", o*_K = W_K i*, and o*_V = W_V i* shifted by a
// deterministic pattern of size shift (as if learned).
func Concept(t testing.TB, p *pipeline.Pipeline, name, super string, shift float32) *edit.Concept {
	t.Helper()
	ids, ok := p.Tokenizer.Lookup(super)
	if !ok || len(ids) != 1 {
		t.Fatalf("conceptstest: %q is not one token", super)
	}
	d := p.CLIP.Config.HiddenSize
	emb := slices.Clone(p.CLIP.TokenEmbedding().Data()[ids[0]*d : (ids[0]+1)*d])
	encs, err := p.EncodePrompts(context.Background(), []string{"a photo of a " + super}, pipeline.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pos := slices.Index(encs[0].Chunks[0].IDs[:], ids[0])
	in := slices.Clone(encs[0].Hidden.Data()[pos*d : (pos+1)*d])
	layers, err := edit.InitTargets(p.UNet.CrossAttentions(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range layers {
		for i := range tg.V.Data() {
			tg.V.Data()[i] += shift * float32(i%7-3)
		}
	}
	return &edit.Concept{Name: name, Word: concepts.Placeholder(name), Superclass: super, Embedding: tensor.MustNew(emb, d),
		Input: in, Beta: edit.InferenceBeta, Tau: edit.InferenceTau, Layers: layers}
}

// Write saves Concept(t, p, name, super, shift) for base model base as
// dir/name.concept and returns the path.
func Write(t testing.TB, p *pipeline.Pipeline, dir, name, super, base string, shift float32) string {
	t.Helper()
	f, err := concepts.ToFile(Concept(t, p, name, super, shift), p, concepts.Meta{BaseModel: base})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".concept")
	if err := conceptfile.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	return path
}

// Small returns a valid concept with tiny made-up tensors (D = 4, one
// layer) for base model base, for tests that need no model.
func Small(name, super, base string) *conceptfile.Concept {
	return &conceptfile.Concept{
		Header: conceptfile.Header{Name: name, Superclass: super, SuperclassToken: 1, Beta: 0.7, Tau: 0.15,
			BaseModel: base, Covariance: "cov", Dim: 4},
		Embedding: []float32{1, 2, 3, 4}, TargetInput: []float32{0.5, 0.5, 0.5, 0.5},
		Layers: []conceptfile.Layer{{Name: "l.attn2", OutK: []float32{1, 0}, OutV: []float32{0, 1}}},
	}
}

// WriteSmall saves Small(name, super, base) as dir/name.concept.
func WriteSmall(t testing.TB, dir, name, super, base string) string {
	t.Helper()
	path := filepath.Join(dir, name+".concept")
	if err := conceptfile.WriteFile(path, Small(name, super, base)); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteFor is Write for p's own base model (concepts.BaseHash of p.Path).
func WriteFor(t testing.TB, p *pipeline.Pipeline, dir, name, super string, shift float32) string {
	t.Helper()
	base, err := concepts.BaseHash(context.Background(), p.Path)
	if err != nil {
		t.Fatal(err)
	}
	return Write(t, p, dir, name, super, base, shift)
}

// Captions is a small caption corpus, so that tests compute the
// covariance C in moments (app.Options.Captions).
func Captions(t testing.TB) []string {
	t.Helper()
	caps, err := captions.Generate(48, 1)
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

// DiscPhotos writes n small training photos into a new temporary folder
// and returns their paths: photo i is width+8i by 40 pixels, a yellow disc
// (moving with i) on a background whose red rises with i, PNG data in
// files named p<i>.<ext> (the loader decodes by content).
func DiscPhotos(t testing.TB, n, width int, ext string) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for i := range n {
		w := width + 8*i
		img := image.NewNRGBA(image.Rect(0, 0, w, 40))
		for y := range 40 {
			for x := range w {
				c := color.NRGBA{uint8(40 + 30*i), 90, 160, 255}
				if dx, dy := x-20-4*i, y-20; dx*dx+dy*dy < 100 {
					c = color.NRGBA{250, 210, 40, 255}
				}
				img.SetNRGBA(x, y, c)
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("p%d.%s", i, ext))
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}
