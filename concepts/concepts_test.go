package concepts_test

import (
	"context"
	"errors"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/internal/conceptstest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

var tiny struct {
	once sync.Once
	p    *pipeline.Pipeline
	hash string
	cv   *covariance.Covariance
	err  error
}

// tinyModel loads the tiny golden model once, with its base hash and a C
// from a small corpus.
func tinyModel(t *testing.T) (*pipeline.Pipeline, string, *covariance.Covariance) {
	t.Helper()
	path := golden.Path(t, "tiny_diffusers")
	tiny.once.Do(func() {
		ctx := context.Background()
		if tiny.p, tiny.err = pipeline.Load(ctx, path, pipeline.LoadOptions{}); tiny.err != nil {
			return
		}
		if tiny.hash, tiny.err = concepts.BaseHash(ctx, path); tiny.err != nil {
			return
		}
		caps, err := captions.Generate(64, 1)
		if err != nil {
			tiny.err = err
			return
		}
		tiny.cv, _, tiny.err = concepts.Covariance(ctx, tiny.p, caps, "", nil)
	})
	if tiny.err != nil {
		t.Fatal(tiny.err)
	}
	return tiny.p, tiny.hash, tiny.cv
}

func latents(t *testing.T, p *pipeline.Pipeline, prompt string, ed pipeline.ConditioningEdit) []float32 {
	t.Helper()
	r := pipeline.Request{Prompt: prompt, Negative: "blurry", Seed: 3, Steps: 2, CFG: 5, Width: 32, Height: 32, Edit: ed}
	res, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Latents.Data()
}

// A concept saved to a file and read back generates bit for bit what the
// in-memory concept does; no concept is the base model bit for bit.
func TestFileRoundTripGenerations(t *testing.T) {
	p, hash, cv := tinyModel(t)
	mem := conceptstest.Concept(t, p, "tubby", "cat", 0.05)
	f, err := concepts.ToFile(mem, p, concepts.Meta{BaseModel: hash, Covariance: cv.Key, Created: "2026-01-01T00:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tubby.concept")
	if err := conceptfile.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	back, err := conceptfile.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.CheckCovariance(cv.Key); err != nil {
		t.Error(err)
	}
	loaded, err := concepts.FromFile(back, p, hash)
	if err != nil {
		t.Fatal(err)
	}
	prompt := "a photo of a <tubby> on a beach"
	if got := concepts.PromptNames(prompt); !slices.Equal(got, []string{"tubby"}) {
		t.Errorf("PromptNames = %q", got)
	}
	opt := edit.Options{Lock: edit.Global}
	a, err := concepts.NewSet([]concepts.Use{{mem, 0.6, 0.2}}, cv, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := concepts.NewSet([]concepts.Use{{loaded, 0.6, 0.2}}, cv, opt)
	if err != nil {
		t.Fatal(err)
	}
	want := latents(t, p, prompt, a)
	if got := latents(t, p, prompt, b); !slices.Equal(got, want) {
		t.Error("the concept read from its file generates differently from the one in memory")
	}
	base := latents(t, p, prompt, nil)
	empty, err := concepts.NewSet(nil, nil, edit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := latents(t, p, prompt, empty); !slices.Equal(got, base) {
		t.Error("an empty set changed the base model's output")
	}
	if slices.Equal(want, base) {
		t.Error("the concept changed nothing")
	}
	// The gate given to NewSet is what applies: another β differs, and the
	// concept itself keeps its own.
	c, err := concepts.NewSet([]concepts.Use{{loaded, 0.95, 0.2}}, cv, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := latents(t, p, prompt, c); slices.Equal(got, want) {
		t.Error("β had no effect")
	}
	if loaded.Beta != conceptfile.DefaultBeta && loaded.Beta != float32(edit.InferenceBeta) {
		t.Errorf("NewSet changed the loaded concept's β to %g", loaded.Beta)
	}
}

// A concept of another base model is refused with both models named, and
// one whose sizes do not fit the model is refused too.
func TestFromFileRefuses(t *testing.T) {
	p, hash, cv := tinyModel(t)
	mem := conceptstest.Concept(t, p, "tubby", "cat", 0.05)
	f, err := concepts.ToFile(mem, p, concepts.Meta{BaseModel: "0123456789", Covariance: cv.Key})
	if err != nil {
		t.Fatal(err)
	}
	_, err = concepts.FromFile(f, p, hash)
	if !errors.Is(err, conceptfile.ErrBaseMismatch) || !strings.Contains(err.Error(), "0123456789") ||
		!strings.Contains(err.Error(), hash) || !strings.Contains(err.Error(), "tiny_diffusers") {
		t.Errorf("other base model: %v", err)
	}
	f.BaseModel = hash
	short := *f
	short.Layers = f.Layers[1:]
	if _, err := concepts.FromFile(&short, p, hash); err == nil || !strings.Contains(err.Error(), "layers") {
		t.Errorf("missing layer: %v", err)
	}
	renamed := *f
	renamed.Layers = slices.Clone(f.Layers)
	renamed.Layers[0].Name = "input_blocks.99.1.transformer_blocks.0.attn2"
	if _, err := concepts.FromFile(&renamed, p, hash); err == nil || !strings.Contains(err.Error(), f.Layers[0].Name) {
		t.Errorf("unknown layer: %v", err)
	}
	sized := *f
	sized.Layers = slices.Clone(f.Layers)
	sized.Layers[2].OutK = sized.Layers[2].OutK[1:]
	if _, err := concepts.FromFile(&sized, p, hash); err == nil || !strings.Contains(err.Error(), "values") {
		t.Errorf("wrong layer size: %v", err)
	}
	narrow := *f
	narrow.Embedding = f.Embedding[1:]
	if _, err := concepts.FromFile(&narrow, p, hash); err == nil || !strings.Contains(err.Error(), "text width") {
		t.Errorf("wrong width: %v", err)
	}
}

func TestNewSetChecks(t *testing.T) {
	c := &edit.Concept{Name: "a", Word: "<a>"}
	m, err := edit.NewDenseMetric([]float64{1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uses []concepts.Use
		m    edit.Metric
		want string
	}{
		{[]concepts.Use{{c, 1.5, 0.1}}, m, "β = 1.5"},
		{[]concepts.Use{{c, 0.5, 0}}, m, "τ = 0"},
		{[]concepts.Use{{c, 0.5, 0.1}, {&edit.Concept{Word: "<A>"}, 0.5, 0.1}}, m, "twice"},
		{[]concepts.Use{{c, 0.5, 0.1}}, nil, "covariance"},
		{[]concepts.Use{{nil, 0.5, 0.1}}, m, "nil"},
	} {
		if _, err := concepts.NewSet(tc.uses, tc.m, edit.Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSet(%v): %v, want an error with %q", tc.uses, err, tc.want)
		}
	}
	if got := concepts.PromptNames("<Tubby> and <pot> with <tubby>, <bad name>, <x_1>", "<neg>"); !slices.Equal(got, []string{"tubby", "pot", "x_1", "neg"}) {
		t.Errorf("PromptNames = %q", got)
	}
	for _, s := range []string{"SUM", "exact", ""} {
		if _, err := concepts.ParseMulti(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := concepts.ParseMulti("approx"); err == nil {
		t.Error("ParseMulti(approx) accepted")
	}
	if l, err := concepts.ParseLock("Global"); err != nil || l != edit.Global {
		t.Errorf("ParseLock(Global) = %v, %v", l, err)
	}
	if _, err := concepts.ParseLock("both"); err == nil {
		t.Error("ParseLock(both) accepted")
	}
}

// C comes from the cache on the second call; a cancelled context stops it.
func TestCovarianceCache(t *testing.T) {
	p, _, _ := tinyModel(t)
	caps, err := captions.Generate(32, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := concepts.Covariance(ctx, p, caps, dir, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	var calls int
	cv, st, err := concepts.Covariance(context.Background(), p, caps, dir, func(covariance.Progress) { calls++ })
	if err != nil || st.Hit || calls == 0 {
		t.Fatalf("first: %v, %+v, %d progress calls", err, st, calls)
	}
	again, st, err := concepts.Covariance(context.Background(), p, caps, dir, nil)
	if err != nil || !st.Hit || again.Key != cv.Key {
		t.Errorf("second: %v, %+v", err, st)
	}
}
