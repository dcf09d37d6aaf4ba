package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// generateLatents runs r and returns its latents.
func generateLatents(t *testing.T, p *Pipeline, r Request) []float32 {
	t.Helper()
	res, err := p.Generate(context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Latents.Data()
}

// A cached request runs the text encoder once and gives the same bits as
// an uncached one; so does an edit that re-encodes (global key locking).
func TestEncodingCacheBitIdentical(t *testing.T) {
	p := tinyPipeline(t)
	r := smallRequest(p)
	r.Negative = "blurry, (ugly:1.2)"
	r.Emphasis = true
	want := generateLatents(t, p, r)

	cache := NewEncodingCache(0)
	r.Encodings = cache
	for i := range 2 {
		if got := generateLatents(t, p, r); !slices.Equal(got, want) {
			t.Fatalf("run %d with the cache differs from the uncached run", i)
		}
	}
	if s := cache.Stats(); s.Misses != 1 || s.Hits != 1 || cache.Len() != 1 {
		t.Fatalf("stats %+v, %d entries; want 1 miss, 1 hit, 1 entry", s, cache.Len())
	}
	// Another seed reuses the encoding; another prompt does not.
	r.Seed++
	generateLatents(t, p, r)
	r.Prompt = "a blue fox"
	generateLatents(t, p, r)
	if s := cache.Stats(); s.Misses != 2 || s.Hits != 2 {
		t.Fatalf("stats %+v; want 2 misses, 2 hits", s)
	}

	// With an edit whose editor re-encodes: the words' embeddings are in
	// the key, and the re-encoding is cached too.
	d := p.CLIP.Config.HiddenSize
	cat, _ := p.Tokenizer.Lookup("cat")
	dog, _ := p.Tokenizer.Lookup("dog")
	emb := slices.Clone(p.CLIP.TokenEmbedding().Data()[cat[0]*d : (cat[0]+1)*d])
	newEdit := func(e []float32) *fakeEdit {
		return &fakeEdit{word: "<tubby>", table: tensor.MustNew(e, 1, d), reencode: map[int]int{p.CLIP.Config.VocabSize: dog[0]}}
	}
	r = smallRequest(p)
	r.Prompt = "a photo of a <tubby>"
	r.Edit = newEdit(emb)
	want = generateLatents(t, p, r)
	wantSuper := r.Edit.(*fakeEdit).super.Data()
	cache = NewEncodingCache(0)
	r.Encodings = cache
	for i := range 2 {
		f := newEdit(emb)
		r.Edit = f
		if got := generateLatents(t, p, r); !slices.Equal(got, want) || !slices.Equal(f.super.Data(), wantSuper) {
			t.Fatalf("edit run %d with the cache differs from the uncached run", i)
		}
	}
	if s := cache.Stats(); s.Misses != 2 || s.Hits != 2 {
		t.Fatalf("edit stats %+v; want 2 misses (prompts, re-encoding) then 2 hits", s)
	}
	other := slices.Clone(emb)
	other[0] += 0.5
	r.Edit = newEdit(other)
	generateLatents(t, p, r)
	if s := cache.Stats(); s.Misses != 4 || s.Hits != 2 {
		t.Fatalf("stats %+v after changing the word's embedding; want two misses (the embeddings are part of the key)", s)
	}
}

// The cache empties itself when used with another pipeline, keeps to its
// byte budget, and serves concurrent callers.
func TestEncodingCacheBounds(t *testing.T) {
	p := tinyPipeline(t)
	ctx := context.Background()
	one, err := p.EncodePrompts(ctx, []string{"a"}, TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := 4 * int64(one[0].Hidden.Size())
	cache := NewEncodingCache(size)
	opt := TextOptions{Cache: cache}
	for _, prompt := range []string{"a", "b", "a"} {
		if _, err := p.EncodePrompts(ctx, []string{prompt}, opt); err != nil {
			t.Fatal(err)
		}
	}
	if s := cache.Stats(); cache.Len() != 1 || s.Misses != 3 {
		t.Fatalf("budget of one prompt: %d entries, stats %+v; want 1 entry and 3 misses (a evicted by b)", cache.Len(), s)
	}
	// A cached encoding changed by its caller does not change the cache.
	got, _ := p.EncodePrompts(ctx, []string{"a"}, opt)
	got[0].Hidden.Data()[0] += 1
	again, _ := p.EncodePrompts(ctx, []string{"a"}, opt)
	if !slices.Equal(again[0].Hidden.Data(), one[0].Hidden.Data()) {
		t.Fatal("the cache handed out its own encoding")
	}
	p2 := tinyPipeline(t)
	if _, err := p2.EncodePrompts(ctx, []string{"a"}, opt); err != nil {
		t.Fatal(err)
	}
	if s := cache.Stats(); s.Misses != 4 {
		t.Fatalf("another pipeline was served the first one's encoding: %+v", s)
	}

	// Concurrent calls for one batch of two get its encoding (compared with
	// the same batch uncached: a BLAS may round a batch of two otherwise
	// than a batch of one).
	pair, err := p.EncodePrompts(ctx, []string{"a", "b"}, TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cache = NewEncodingCache(0)
	opt.Cache = cache
	var wg sync.WaitGroup
	outs := make([][]Encoding, 4)
	for i := range outs {
		wg.Go(func() {
			outs[i], _ = p.EncodePrompts(ctx, []string{"a", "b"}, opt)
		})
	}
	wg.Wait()
	for i, o := range outs {
		if len(o) != 2 || !slices.Equal(o[0].Hidden.Data(), pair[0].Hidden.Data()) || !slices.Equal(o[1].Hidden.Data(), pair[1].Hidden.Data()) {
			t.Fatalf("concurrent call %d: %d encodings or another result", i, len(o))
		}
	}
	if s := cache.Stats(); s.Hits+s.Misses != 4 || cache.Len() != 1 {
		t.Fatalf("concurrent stats %+v, %d entries", s, cache.Len())
	}
}
