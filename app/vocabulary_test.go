package app

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/assets"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// noHubCache points the Hugging Face cache variables and HOME at empty
// folders, so no vocabulary is found there.
func noHubCache(t *testing.T) {
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())
}

// openSingle opens a studio with the given options (a fresh config and data
// folder) and loads path, returning its last model event.
func openSingle(t *testing.T, path string, opt Options) (*Studio, ModelEvent) {
	t.Helper()
	if opt.ConfigDir == "" {
		opt.ConfigDir = t.TempDir()
	}
	s, err := OpenStudio(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	events := make(chan ModelEvent, 1000)
	s.Models.OnEvent(func(e ModelEvent) { events <- e })
	wait(t, s.OpenModel(path), "model load")
	var last ModelEvent
	for len(events) > 0 {
		last = <-events
	}
	return s, last
}

// copyDefaultVocabulary copies the default model's own vocabulary
// (vocab.json + merges.txt, a few thousand ids) into dir, and returns its
// size: one that is not CLIP's, to tell which vocabulary a model was
// loaded with.
func copyDefaultVocabulary(t *testing.T, dir string) int {
	t.Helper()
	for _, name := range []string{tokenizer.VocabFile, tokenizer.MergesFile} {
		b, err := fs.ReadFile(assets.DefaultModelFS(), "tokenizer/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := tokenizer.Load(tokenizer.Source{Vocab: filepath.Join(dir, tokenizer.VocabFile), Merges: filepath.Join(dir, tokenizer.MergesFile)})
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() >= 49408 {
		t.Fatalf("the default model's vocabulary has %d ids, no fewer than CLIP's", tok.VocabSize())
	}
	return tok.VocabSize()
}

// A single-file checkpoint with no vocabulary anywhere loads with the
// built-in CLIP vocabulary; one beside it or in the data folder still wins.
func TestSingleFileUsesBuiltInVocabulary(t *testing.T) {
	noHubCache(t)
	single := golden.MergeFiles(t, []string{"tiny_clip_text.safetensors", "tiny_unet.safetensors", "tiny_vae.safetensors"})
	prompt := "a photograph of an astronaut riding a horse"
	want, err := tokenizer.Load(tokenizer.Source{BPE: golden.Path(t, tokenizer.BPEFile)})
	if err != nil {
		t.Fatal(err)
	}

	// Without one the load fails, saying where it looked.
	s, last := openSingle(t, single, Options{})
	var nf *tokenizer.NotFoundError
	if p, _ := s.Models.Current(); p != nil || !errors.As(last.Err, &nf) {
		t.Fatalf("without a built-in vocabulary: model %v, last event %+v; want a *tokenizer.NotFoundError", p, last)
	}

	s, last = openSingle(t, single, Options{CLIPVocabulary: assets.CLIPVocab()})
	p, info := s.Models.Current()
	if p == nil || last.Err != nil || !last.Loaded {
		t.Fatalf("with the built-in vocabulary: last event %+v, status %q", last, s.Status())
	}
	if info.Path != single || info.Name != "tiny_merged" {
		t.Errorf("info %+v", info)
	}
	if p.Tokenizer.VocabSize() != 49408 || !slices.Equal(p.Tokenizer.IDs77(prompt), want.IDs77(prompt)) {
		t.Errorf("the built-in vocabulary gives %d ids and %v for %q, want 49408 and %v",
			p.Tokenizer.VocabSize(), p.Tokenizer.IDs77(prompt), prompt, want.IDs77(prompt))
	}

	// A vocabulary in the data folder (the config folder here) wins.
	data := t.TempDir()
	n := copyDefaultVocabulary(t, data)
	s, last = openSingle(t, single, Options{ConfigDir: data, CLIPVocabulary: assets.CLIPVocab()})
	if p, _ := s.Models.Current(); p == nil || p.Tokenizer.VocabSize() != n {
		t.Errorf("vocabulary in the data folder: last event %+v; want the model loaded with its %d ids", last, n)
	}

	// So does one beside the checkpoint.
	copyDefaultVocabulary(t, filepath.Dir(single))
	s, last = openSingle(t, single, Options{CLIPVocabulary: assets.CLIPVocab()})
	if p, _ := s.Models.Current(); p == nil || p.Tokenizer.VocabSize() != n {
		t.Errorf("vocabulary beside the checkpoint: last event %+v; want the model loaded with its %d ids", last, n)
	}
}
