package pipeline

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
)

// Per-image prompts: each row of a batch is conditioned on its own prompt
// and negative prompt, as if the whole batch had that row's prompts.
func TestPerImagePrompts(t *testing.T) {
	p := tinyPipeline(t)
	gen := func(edit func(*Request)) *Result {
		t.Helper()
		r := smallRequest(p)
		r.Sampler, r.BatchSize = "ddim", 2
		edit(&r)
		res, err := p.Generate(context.Background(), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Images) != 2 || res.Latents.Dim(0) != 2 {
			t.Fatalf("%d images, latents %v; want 2", len(res.Images), res.Latents)
		}
		return res
	}
	row := func(res *Result, i int) []float32 {
		n := res.Latents.Size() / res.Latents.Dim(0)
		return res.Latents.Data()[i*n : (i+1)*n]
	}
	near := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-4*(1+math.Abs(float64(want[i])))) {
				t.Errorf("%s: latent %d = %g, want %g", what, i, got[i], want[i])
				return
			}
		}
	}

	fox := gen(func(r *Request) { r.Prompt = "a red fox" })
	bird := gen(func(r *Request) { r.Prompt, r.Negative = "a blue bird", "blurry" })
	same := gen(func(r *Request) { r.Prompt, r.Prompts = "", []string{"a red fox", "a red fox"} })
	if !equal(same.Latents.Data(), fox.Latents.Data()) {
		t.Error("Prompts repeating one prompt differ from Prompt with BatchSize 2")
	}
	mixed := gen(func(r *Request) {
		r.Prompt, r.BatchSize = "", 0
		r.Prompts = []string{"a red fox", "a blue bird"}
		r.Negatives = []string{"", "blurry"}
	})
	near("row 0 (fox)", row(mixed, 0), row(fox, 0))
	near("row 1 (bird, blurry)", row(mixed, 1), row(bird, 1))
	if equal(row(mixed, 1), row(fox, 1)) {
		t.Error("row 1 ignored its own prompt")
	}
	negOnly := gen(func(r *Request) { r.Negatives = []string{"", "blurry"} })
	near("negatives only, row 0", row(negOnly, 0), row(fox, 0))
	if equal(row(negOnly, 1), row(fox, 1)) {
		t.Error("row 1 ignored its own negative prompt")
	}
}

// The per-image prompts must agree with the batch size and Prompt.
func TestBadPromptRows(t *testing.T) {
	p := tinyPipeline(t)
	many := slices.Repeat([]string{"a fox"}, MaxBatch+1)
	for _, tc := range []struct {
		name  string
		edit  func(*Request)
		inErr string
	}{
		{"Prompt and Prompts", func(r *Request) { r.Prompts = []string{"a", "b"} }, "both Prompt"},
		{"batch size", func(r *Request) { r.Prompt, r.Prompts, r.BatchSize = "", []string{"a", "b"}, 3 }, "one prompt per image"},
		{"negatives", func(r *Request) { r.Prompt, r.Prompts, r.Negatives = "", []string{"a", "b"}, []string{"c"} }, "one prompt per image"},
		{"too many", func(r *Request) { r.Prompt, r.Prompts = "", many }, "at most"},
		{"bad row", func(r *Request) { r.Prompt, r.Emphasis, r.Prompts = "", true, []string{"a", "(b:1.2.3)"} }, "(b:1.2.3)"},
	} {
		r := smallRequest(p)
		tc.edit(&r)
		_, err := p.Generate(context.Background(), r, nil)
		if err == nil || !strings.Contains(err.Error(), tc.inErr) || !strings.HasPrefix(err.Error(), "pipeline: ") {
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.inErr)
		}
	}
}
