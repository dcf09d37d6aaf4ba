package edit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// tinyPipeline loads the tiny golden model from its diffusers folder.
func tinyPipeline(t testing.TB) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.Load(context.Background(), golden.Path(t, "tiny_diffusers"), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// identity is C⁻¹ = I, enough for plumbing tests.
func identity(t testing.TB, d int) Metric {
	inv := make([]float64, d*d)
	for i := range d {
		inv[i*d+i] = 1
	}
	m, err := NewDenseMetric(inv, d)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tinyConcept builds a concept for the tiny model the way training starts
// one (spec §6.3): the embedding and i* from the superclass word, o*_K =
// W_K i*, and o*_V = W_V i* moved by a random offset (as if learned).
func tinyConcept(t testing.TB, p *pipeline.Pipeline, word, super string, seed uint64) *Concept {
	t.Helper()
	ids, ok := p.Tokenizer.Lookup(super)
	if !ok || len(ids) != 1 {
		t.Fatalf("superclass %q is not one token", super)
	}
	d := p.CLIP.Config.HiddenSize
	emb := slices.Clone(p.CLIP.TokenEmbedding().Data()[ids[0]*d : (ids[0]+1)*d])
	encs, err := p.EncodePrompts(context.Background(), []string{"a photo of a " + super}, pipeline.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pos := slices.Index(encs[0].Chunks[0].IDs[:], ids[0])
	in := slices.Clone(encs[0].Hidden.Data()[pos*d : (pos+1)*d])
	r := newRand(seed)
	layers, err := InitTargets(p.UNet.CrossAttentions(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range p.UNet.CrossAttentions() {
		tg := layers[l.Name]
		checkClose(t, "o*_K", tg.K.Data(), matVec(f64(l.ToK.Data()), f64(in)), 1e-5, 1e-5)
		checkClose(t, "o*_V", tg.V.Data(), matVec(f64(l.ToV.Data()), f64(in)), 1e-5, 1e-5)
		for i, x := range randn(r, tg.V.Size(), 1) { // as if learned
			tg.V.Data()[i] += x
		}
	}
	return &Concept{Name: word, Word: word, Superclass: super, Embedding: tensor.MustNew(emb, d), Input: in,
		Beta: InferenceBeta, Tau: InferenceTau, Layers: layers}
}

func tinyRequest(prompt string) pipeline.Request {
	return pipeline.Request{Prompt: prompt, Negative: "blurry", Seed: 7, Steps: 2, CFG: 5, Width: 32, Height: 32, BatchSize: 2}
}

func generate(t testing.TB, p *pipeline.Pipeline, r pipeline.Request) []float32 {
	t.Helper()
	res, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Latents.Data()
}

// With no concept in use (no Edit, or an empty Set) a generation is bit
// for bit the base model's; a concept changes it, through its word or
// not, and global locking differs from local locking.
func TestSetGenerations(t *testing.T) {
	p := tinyPipeline(t)
	d := p.CLIP.Config.HiddenSize
	base := generate(t, p, tinyRequest("a photo of a cat"))
	r := tinyRequest("a photo of a cat")
	r.Edit = &Set{Metric: identity(t, d)}
	if got := generate(t, p, r); !slices.Equal(got, base) {
		t.Errorf("an empty Set changed the output (max diff %g)", maxDiff(got, base))
	}
	c := tinyConcept(t, p, "<tubby>", "cat", 1)
	r.Edit = &Set{Concepts: []*Concept{c}, Metric: identity(t, d)}
	if got := generate(t, p, r); maxDiff(got, base) == 0 {
		t.Error("a concept left a prompt with its superclass word unchanged")
	}
	r.Prompt = "a photo of a <tubby>"
	local := generate(t, p, r)
	if maxDiff(local, base) < 1e-3 {
		t.Error("the concept's word changed nothing")
	}
	r.Edit = &Set{Concepts: []*Concept{c}, Metric: identity(t, d), Options: Options{Lock: Global}}
	global := generate(t, p, r)
	if maxDiff(global, local) == 0 {
		t.Error("global locking gave the same output as local locking")
	}
	// Two concepts, both forms.
	c2 := tinyConcept(t, p, "<pot>", "dog", 2)
	r.Prompt = "a <tubby> next to a <pot>"
	for _, multi := range []Multi{Sum, Exact} {
		r.Edit = &Set{Concepts: []*Concept{c, c2}, Metric: identity(t, d), Options: Options{Multi: multi, Lock: Global}}
		if _, err := p.Generate(context.Background(), r, nil); err != nil {
			t.Errorf("two concepts, %v: %v", multi, err)
		}
	}
	// A superclass of several tokens cannot be locked globally.
	bad := *c
	bad.Superclass = "teddybearish"
	r.Edit = &Set{Concepts: []*Concept{&bad}, Metric: identity(t, d), Options: Options{Lock: Global}}
	if _, err := p.Generate(context.Background(), r, nil); err == nil {
		t.Error("a multi-token superclass: no error")
	}
}

// trainStep is one training-like pass on the shared model: the concept's
// word embedding and value targets require gradients, the prompt goes
// through the text encoder with them, the UNet runs with the editor, and
// the backward pass fills their gradients. It returns eps and the
// embedding's gradient.
func trainStep(t testing.TB, p *pipeline.Pipeline, c *Concept, m Metric) ([]float32, []float32) {
	t.Helper()
	d := p.CLIP.Config.HiddenSize
	emb, _ := tensor.NewParam(slices.Clone(c.Embedding.Data()), 1, d)
	k := *c
	k.Layers = map[string]Targets{}
	for name, tg := range c.Layers {
		v, _ := tensor.NewParam(slices.Clone(tg.V.Data()), tg.V.Shape()...)
		k.Layers[name] = Targets{K: tg.K, V: v}
	}
	ids := p.Tokenizer.IDs77("a photo of a cat")
	ids[5] = p.CLIP.Config.VocabSize // the placeholder
	enc, err := p.CLIP.ForwardWith(ids, 1, clip.Options{Extra: emb})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := NewEditor(p.Engine, enc.Out, []*Concept{&k}, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	uc := p.UNet.Config
	x := tensor.MustNew(randn(newRand(3), uc.InChannels*8*8, 1), 1, uc.InChannels, 8, 8)
	eps, err := p.UNet.Forward(context.Background(), x, []float32{500}, enc.Out, unet.Call{Editor: ed})
	if err != nil {
		t.Fatal(err)
	}
	tensor.AccGrad(eps.Node(), randn(newRand(4), eps.Size(), 1))
	if err := ag.Backward(eps.Node()); err != nil {
		t.Fatal(err)
	}
	if emb.Grad() == nil {
		t.Fatal("no gradient reached the word embedding")
	}
	return slices.Clone(eps.Data()), slices.Clone(emb.Grad())
}

// A preview (no concept), a render with a concept and a training step run
// at the same time on one loaded model and each gets what it gets alone
// (run with -race to check the sharing).
func TestConcurrentUses(t *testing.T) {
	p := tinyPipeline(t)
	d := p.CLIP.Config.HiddenSize
	c := tinyConcept(t, p, "<tubby>", "cat", 1)
	m := identity(t, d)
	preview := tinyRequest("a photo of a cat")
	render := tinyRequest("a photo of a <tubby>")
	render.Edit = &Set{Concepts: []*Concept{c}, Metric: m}

	wantPreview, wantRender := generate(t, p, preview), generate(t, p, render)
	wantEps, wantGrad := trainStep(t, p, c, m)

	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for range 2 {
		wg.Add(3)
		go func() {
			defer wg.Done()
			if got := generate(t, p, preview); !slices.Equal(got, wantPreview) {
				errs <- fmt.Sprintf("preview differs by %g", maxDiff(got, wantPreview))
			}
		}()
		go func() {
			defer wg.Done()
			if got := generate(t, p, render); !slices.Equal(got, wantRender) {
				errs <- fmt.Sprintf("render differs by %g", maxDiff(got, wantRender))
			}
		}()
		go func() {
			defer wg.Done()
			eps, grad := trainStep(t, p, c, m)
			// The backward pass sums a node's gradients in the order its
			// consumers finish, so the gradient may differ in rounding.
			if !slices.Equal(eps, wantEps) || maxDiff(grad, wantGrad) > 1e-5*(1+maxAbs(wantGrad)) {
				errs <- fmt.Sprintf("training step differs: eps by %g, gradient by %g", maxDiff(eps, wantEps), maxDiff(grad, wantGrad))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}
