package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
)

// fakeEdit adds one word whose embedding is a copy of another word's, and
// returns a plain-projection editor that records its calls and, when
// reencode is set, the re-encoding with the word replaced by that other
// word.
type fakeEdit struct {
	word  string
	as    int           // token id whose embedding the word gets
	table tensor.Tensor // [1, D]

	mu       sync.Mutex
	got      *Conditioning
	reencode map[int]int
	super    tensor.Tensor
	calls    int
	contexts []tensor.Tensor
}

func (f *fakeEdit) Words() ([]string, tensor.Tensor) { return []string{f.word}, f.table }

func (f *fakeEdit) Editor(ctx context.Context, c *Conditioning) (unet.KVEditor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = c
	if f.reencode != nil {
		s, err := c.Reencode(ctx, f.reencode)
		if err != nil {
			return nil, err
		}
		f.super = s
	}
	return f, nil
}

func (f *fakeEdit) Project(layer string, kv unet.KV, ctx, w tensor.Tensor) (tensor.Tensor, error) {
	f.mu.Lock()
	f.calls++
	f.contexts = append(f.contexts, ctx)
	f.mu.Unlock()
	return f.got.Engine.Linear(ctx, w, tensor.Tensor{})
}

// A Request.Edit's word reads its embedding in this generation only, its
// editor gets the whole CFG batch [uncond x B; cond x B] with every row's
// ids and sees every cross-attention projection, and Reencode gives the
// prompts with ids replaced.
func TestRequestEdit(t *testing.T) {
	p := tinyPipeline(t)
	ctx := context.Background()
	d := p.CLIP.Config.HiddenSize
	cat, _ := p.Tokenizer.Lookup("cat")
	dog, _ := p.Tokenizer.Lookup("dog")
	emb := slices.Clone(p.CLIP.TokenEmbedding().Data()[cat[0]*d : (cat[0]+1)*d])
	f := &fakeEdit{word: "<tubby>", as: cat[0], table: tensor.MustNew(emb, 1, d), reencode: map[int]int{p.CLIP.Config.VocabSize: dog[0]}}

	r := smallRequest(p)
	r.Prompt, r.Negative, r.BatchSize = "a photo of a <tubby>", "ugly", 2
	base := r
	base.Prompt = "a photo of a cat"
	want, err := p.Generate(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Edit = f
	got, err := p.Generate(ctx, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The word with the embedding of "cat" encodes as "cat" (to rounding:
	// the lookup adds a zero row), and the plain editor changes nothing.
	if d := maxAbsDiff(got.Latents.Data(), want.Latents.Data()); d > 1e-4 {
		t.Errorf("the word with cat's embedding differs from cat by %g", d)
	}
	c := f.got
	rows := 2 * r.BatchSize
	if c == nil || c.Context.Dim(0) != rows || len(c.IDs) != rows || !slices.Equal(c.WordIDs, []int{p.CLIP.Config.VocabSize}) {
		t.Fatalf("conditioning %+v, want %d rows and the word's id", c, rows)
	}
	ug := p.Tokenizer.IDs77("ugly")
	withWord := p.Tokenizer.IDs77("a photo of a cat")
	withWord[5] = p.CLIP.Config.VocabSize
	for i, ids := range c.IDs {
		if want := ug; i >= r.BatchSize {
			want = withWord
			if !slices.Equal(ids, want) {
				t.Errorf("row %d ids %v, want %v", i, ids[:8], want[:8])
			}
		} else if !slices.Equal(ids, want) {
			t.Errorf("row %d ids %v, want %v", i, ids[:8], want[:8])
		}
	}
	layers := len(p.UNet.CrossAttentions())
	if steps := len(got.Timesteps); f.calls != 2*layers*steps {
		t.Errorf("editor called %d times, want %d (K and V, %d layers, %d steps)", f.calls, 2*layers*steps, layers, steps)
	}
	for _, x := range f.contexts {
		if x.Node() != c.Context.Node() {
			t.Fatal("the editor got another context than the conditioning's")
		}
	}
	// Reencode: the uncond rows are copied, the cond rows are "a photo of a dog".
	encs, err := p.EncodePrompts(ctx, []string{"ugly", "a photo of a dog"}, TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := c.Context.Size() / rows
	for i := range rows {
		want := encs[0].Hidden.Data()
		if i >= r.BatchSize {
			want = encs[1].Hidden.Data()
		}
		if d := maxAbsDiff(f.super.Data()[i*n:(i+1)*n], want); d > 1e-5 {
			t.Errorf("re-encoded row %d differs by %g", i, d)
		}
	}
	// Without guidance only the cond rows.
	r.CFG = 1
	if _, err := p.Generate(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	if f.got.Context.Dim(0) != r.BatchSize {
		t.Errorf("CFG 1: %d rows, want %d", f.got.Context.Dim(0), r.BatchSize)
	}
	// A bad embedding table is refused.
	bad := &fakeEdit{word: "<x>", table: tensor.Zeros(1, d+1)}
	r.Edit = bad
	if _, err := p.Generate(ctx, r, nil); err == nil {
		t.Error("embeddings of the wrong width: no error")
	}
}

// An edit that returns no editor leaves the output bit for bit.
func TestNilEditorIsBase(t *testing.T) {
	p := tinyPipeline(t)
	r := smallRequest(p)
	want, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Edit = noEdit{}
	got, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Latents.Data(), want.Latents.Data()) {
		t.Error("an edit without words or editor changed the output")
	}
}

type noEdit struct{}

func (noEdit) Words() ([]string, tensor.Tensor) { return nil, tensor.Tensor{} }
func (noEdit) Editor(context.Context, *Conditioning) (unet.KVEditor, error) {
	return nil, nil
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("lengths %d and %d", len(a), len(b)))
	}
	m := 0.0
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		m = max(m, max(d, -d))
	}
	return m
}
