package pipeline

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// applyEmphasis against the web UI's formula written out in float64:
// y = z*w (per token), then y * mean(z)/mean(y).
func TestApplyEmphasis(t *testing.T) {
	const tokens, d = 5, 3
	rng := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, tokens*d)
	for i := range z {
		z[i] = float32(rng.NormFloat64()) + 0.3
	}
	w := []float32{1, 1.1, 1.21, 1 / 1.1, 1}
	var before, after float64
	want := make([]float64, len(z))
	for i, v := range z {
		before += float64(v)
		want[i] = float64(v) * float64(w[i/d])
		after += want[i]
	}
	for i := range want {
		want[i] *= before / after
	}
	got := slices.Clone(z)
	applyEmphasis(got, w, d)
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > 1e-6*(1+math.Abs(want[i])) {
			t.Errorf("z[%d] = %g, want %g", i, got[i], want[i])
		}
	}
	plain := slices.Clone(z)
	applyEmphasis(plain, []float32{1, 1, 1, 1, 1}, d)
	if !slices.Equal(plain, z) {
		t.Error("all-1 weights changed z")
	}
}

// An emphasised prompt gives the plain prompt's ids and its encoding
// weighted and rescaled per chunk.
func TestEncodeEmphasis(t *testing.T) {
	p := tinyPipeline(t)
	ctx := context.Background()
	plain, err := p.EncodePrompts(ctx, []string{"a photograph of an astronaut riding a horse"}, TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	emph, err := p.EncodePrompts(ctx, []string{"a photograph of an (astronaut:1.3) riding a [horse]"}, TextOptions{Emphasis: true})
	if err != nil {
		t.Fatal(err)
	}
	if plain[0].Chunks[0].IDs != emph[0].Chunks[0].IDs {
		t.Fatalf("ids %v, want %v", emph[0].Chunks[0].IDs, plain[0].Chunks[0].IDs)
	}
	w := emph[0].Chunks[0].Weights[:]
	if w[5] != 1.3 || math.Abs(float64(w[8])-1/1.1) > 1e-6 || w[1] != 1 {
		t.Fatalf("weights %v", w)
	}
	want := slices.Clone(plain[0].Hidden.Data())
	applyEmphasis(want, w, p.CLIP.Config.HiddenSize)
	golden.Check(t, "emphasised encoding", emph[0].Hidden.Data(), want, golden.Tol{Atol: 1e-6, Rtol: 1e-6})
	if slices.Equal(emph[0].Hidden.Data(), plain[0].Hidden.Data()) {
		t.Error("emphasis changed nothing")
	}
}

// A long prompt is split into chunks encoded separately and concatenated;
// a shorter prompt in the same call is padded with empty-prompt chunks.
func TestEncodeLongPrompt(t *testing.T) {
	p := tinyPipeline(t)
	var cfg struct {
		Prompts []string `json:"prompts"`
	}
	golden.JSON(t, "tiny_clip_text_config.json", &cfg)
	long := ""
	for _, s := range cfg.Prompts {
		if len(p.Tokenizer.Encode(s)) > tokenizer.ChunkTokens {
			long = s
		}
	}
	if long == "" {
		long = "a photograph of a cat, " + string(slices.Repeat([]byte("very "), 80)) + "fluffy"
	}
	ctx := context.Background()
	encs, err := p.EncodePrompts(ctx, []string{"", long}, TextOptions{LongPrompts: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(encs[1].Chunks)
	if n < 2 || len(encs[0].Chunks) != n {
		t.Fatalf("%d chunks for the long prompt, %d for the empty one", n, len(encs[0].Chunks))
	}
	d := p.CLIP.Config.HiddenSize
	chunk := tokenizer.ContextLen * d
	for i, e := range encs {
		if h := e.Hidden; h.Dim(0) != 1 || h.Dim(1) != n*tokenizer.ContextLen || h.Dim(2) != d {
			t.Fatalf("encoding %d is %v", i, h)
		}
		for j, c := range e.Chunks {
			ref, err := p.CLIP.ForwardWith(c.IDs[:], 1, clip.Options{})
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "chunk", e.Hidden.Data()[j*chunk:(j+1)*chunk], ref.Out.Data(), golden.Tol{Atol: 1e-6, Rtol: 1e-6})
		}
	}
	emptyIDs, _ := p.Tokenizer.Prompt("", tokenizer.Options{})
	for _, c := range encs[0].Chunks {
		if c.IDs != emptyIDs[0].IDs {
			t.Errorf("padding chunk %v, want the empty prompt's", c.IDs)
		}
	}
	truncated, _ := p.EncodePrompts(ctx, []string{long}, TextOptions{})
	if len(truncated[0].Chunks) != 1 {
		t.Errorf("without LongPrompts: %d chunks", len(truncated[0].Chunks))
	}

	// And a generation conditions on all chunks.
	r := smallRequest(p)
	r.Prompt, r.LongPrompts, r.Steps = long, true, 1
	if _, err := p.Generate(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
}
