package covariance

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// TestGetShipped: a shipped file holding the request's C is used without
// encoding a caption and without touching the cache; one that does not fit
// (another key, width or method, truncated, corrupt) is passed over, named
// in Problem, and C is read from the cache or computed as before.
func TestGetShipped(t *testing.T) {
	ctx := context.Background()
	caps, _ := captions.Generate(30, 4)
	enc := &fakeEnc{d: 12}
	req := Request{Captions: caps, CorpusHash: captions.Hash(caps), Tokenizer: fakeTok{}, Encoder: enc, EncoderHash: "enc1"}
	want, _, err := Get(ctx, req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	shipped := filepath.Join(t.TempDir(), "model", filepath.FromSlash(ShippedFile))
	os.MkdirAll(filepath.Dir(shipped), 0o755)
	if err := Save(shipped, want); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(shipped)

	req.Shipped, req.CacheDir = shipped, t.TempDir()
	calls := enc.calls
	cv, st, err := Get(ctx, req, Options{Progress: func(Progress) { t.Error("computed C despite the shipped file") }})
	if err != nil || !st.Hit || !st.Shipped || st.Path != shipped || st.Problem != nil || enc.calls != calls {
		t.Fatalf("shipped Get: %v %+v, encoder called %d times", err, st, enc.calls-calls)
	}
	if cv.Key != want.Key || !slices.Equal(cv.C, want.C) || cv.Captions != want.Captions {
		t.Error("the shipped C differs from the one saved")
	}
	if ents, _ := os.ReadDir(req.CacheDir); len(ents) != 0 {
		t.Errorf("the cache was written: %v", ents)
	}

	other := *want
	other.Key = Key("enc2", req.CorpusHash)
	wide, err := Factor([]float64{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, 4)
	if err != nil {
		t.Fatal(err)
	}
	wide.Key, wide.Captions, wide.Tokens = want.Key, 1, 77
	write := func(cv *Covariance) []byte {
		dir := t.TempDir()
		if err := Save(filepath.Join(dir, "c.bin"), cv); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "c.bin"))
		return b
	}
	bad := []struct {
		name string
		raw  []byte
		want string
	}{
		{"another key", write(&other), "holds C"},
		{"another width", write(wide), "4 wide"},
		{"truncated", good[:len(good)-9], "checksum"},
		{"cut in the header", good[:20], ""},
		{"flipped bit", flip(good, len(good)/2), "checksum"},
		{"empty", nil, "truncated"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(shipped, c.raw, 0o644); err != nil {
				t.Fatal(err)
			}
			req.CacheDir = t.TempDir()
			calls := enc.calls
			cv, st, err := Get(ctx, req, Options{})
			if err != nil || st.Hit || st.Shipped || enc.calls == calls || st.Problem == nil ||
				!strings.Contains(st.Problem.Error(), "shipped") || !strings.Contains(st.Problem.Error(), c.want) {
				t.Fatalf("Get: %v %+v, encoder called %d times", err, st, enc.calls-calls)
			}
			if !slices.Equal(cv.C, want.C) || cv.Key != want.Key {
				t.Error("the computed C differs")
			}
			// computed C was cached as before, and a later Get reads it
			// from there, still naming the shipped file's problem
			calls = enc.calls
			if _, st, err := Get(ctx, req, Options{}); err != nil || !st.Hit || st.Shipped || st.Path != CachePath(req.CacheDir, want.Key) ||
				st.Problem == nil || enc.calls != calls {
				t.Errorf("second Get: %v %+v", err, st)
			}
		})
	}

	os.Remove(shipped)
	req.CacheDir = ""
	if _, st, err := Get(ctx, req, Options{}); err != nil || st.Hit || st.Problem != nil {
		t.Errorf("no shipped file: %v %+v", err, st)
	}
}

// TestForPipelineShipped builds a model folder that carries its C (the
// tiny diffusers model and a small caption list) and checks that
// ForPipeline reads it without encoding a caption, and computes C again
// when the file is another model's or truncated. A single-file checkpoint
// has no shipped C.
func TestForPipelineShipped(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "model")
	golden.CopyDir(t, golden.Path(t, "tiny_diffusers"), dir)
	p, err := pipeline.Load(ctx, dir, pipeline.LoadOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	caps, _ := captions.Generate(40, 5)
	shipped := ShippedPath(dir)
	if shipped != filepath.Join(dir, "perfusion", "covariance.bin") {
		t.Fatalf("ShippedPath %q", shipped)
	}
	if got := ShippedPath(filepath.Join(dir, "text_encoder", "model.safetensors")); got != "" {
		t.Errorf("ShippedPath of a file %q, want none", got)
	}
	if got := ShippedPath(filepath.Join(dir, "gone")); got != "" {
		t.Errorf("ShippedPath of a missing folder %q, want none", got)
	}

	// What mkdefault does. A stale file there is neither read nor kept.
	os.MkdirAll(filepath.Dir(shipped), 0o755)
	os.WriteFile(shipped, []byte("stale"), 0o644)
	computed := 0
	path, want, err := WriteShipped(ctx, p, caps, Options{Progress: func(Progress) { computed++ }})
	if err != nil || path != shipped || computed == 0 {
		t.Fatalf("WriteShipped: %q, %v, %d progress calls", path, err, computed)
	}
	req, err := PipelineRequest(ctx, p, caps, "")
	if err != nil {
		t.Fatal(err)
	}
	if req.Shipped != shipped || want.Key != Key(req.EncoderHash, req.CorpusHash) {
		t.Errorf("request's shipped file %q (want %q), key %q", req.Shipped, shipped, want.Key)
	}
	file := &pipeline.Pipeline{Path: filepath.Join(dir, "text_encoder", "model.safetensors"), CLIP: p.CLIP, Tokenizer: p.Tokenizer}
	if _, _, err := WriteShipped(ctx, file, caps, Options{}); err == nil || !strings.Contains(err.Error(), "not a model folder") {
		t.Errorf("WriteShipped for a single file: %v", err)
	}

	cache := t.TempDir()
	computed = 0
	cv, st, err := ForPipeline(ctx, p, caps, cache, Options{Progress: func(Progress) { computed++ }})
	if err != nil || !st.Hit || !st.Shipped || st.Problem != nil || computed != 0 {
		t.Fatalf("ForPipeline with the shipped C: %v %+v, %d progress calls", err, st, computed)
	}
	if cv.Key != want.Key || !slices.Equal(cv.C, want.C) {
		t.Error("ForPipeline's C is not the shipped one")
	}

	// Another corpus is another key: the shipped C does not fit it.
	more, _ := captions.Generate(41, 5)
	computed = 0
	if _, st, err := ForPipeline(ctx, p, more, "", Options{Progress: func(Progress) { computed++ }}); err != nil ||
		st.Shipped || computed == 0 || st.Problem == nil || !strings.Contains(st.Problem.Error(), "holds C") {
		t.Errorf("another corpus: %v %+v, %d progress calls", err, st, computed)
	}

	raw, _ := os.ReadFile(shipped)
	os.WriteFile(shipped, raw[:len(raw)/2], 0o644)
	computed = 0
	cv, st, err = ForPipeline(ctx, p, caps, cache, Options{Progress: func(Progress) { computed++ }})
	if err != nil || st.Shipped || computed == 0 || st.Problem == nil {
		t.Fatalf("truncated shipped C: %v %+v, %d progress calls", err, st, computed)
	}
	if cv.Key != want.Key {
		t.Errorf("key %q, want %q", cv.Key, want.Key)
	}
}
