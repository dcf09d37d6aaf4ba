package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

// isolate points every Hugging Face cache variable and HOME into a fresh
// temporary folder and returns it.
func isolate(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", filepath.Join(root, "home"))
	return root
}

// touch creates the files (and their folders) under root.
func touch(t *testing.T, root string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLocateOrder(t *testing.T) {
	clip := "models--openai--clip-vit-large-patch14"
	for _, c := range []struct {
		name  string
		files []string
		ckpt  string // relative to the root; a folder if it ends in '/'
		env   map[string]string
		want  Source // relative to the root
	}{
		{"bpe beside", []string{"m/" + BPEFile, "m/vocab.json", "m/merges.txt", "data/" + BPEFile},
			"m/model.safetensors", nil, Source{BPE: "m/" + BPEFile}},
		{"unzipped bpe beside", []string{"m/" + bpeTxtFile},
			"m/model.safetensors", nil, Source{BPE: "m/" + bpeTxtFile}},
		{"pair beside", []string{"m/vocab.json", "m/merges.txt", "m/tokenizer/vocab.json", "m/tokenizer/merges.txt"},
			"m/model.ckpt", nil, Source{Vocab: "m/vocab.json", Merges: "m/merges.txt"}},
		{"tokenizer folder beside", []string{"m/vocab.json", "m/tokenizer/vocab.json", "m/tokenizer/merges.txt"},
			"m/model.ckpt", nil, Source{Vocab: "m/tokenizer/vocab.json", Merges: "m/tokenizer/merges.txt"}},
		{"diffusers folder", []string{"sd/model_index.json", "sd/tokenizer/vocab.json", "sd/tokenizer/merges.txt"},
			"sd/", nil, Source{Vocab: "sd/tokenizer/vocab.json", Merges: "sd/tokenizer/merges.txt"}},
		{"inside a diffusers folder", []string{"sd/model_index.json", "sd/tokenizer/vocab.json", "sd/tokenizer/merges.txt"},
			"sd/unet/diffusion_pytorch_model.safetensors", nil,
			Source{Vocab: "sd/tokenizer/vocab.json", Merges: "sd/tokenizer/merges.txt"}},
		{"hf home before data", []string{"hf/hub/" + clip + "/snapshots/s1/vocab.json", "hf/hub/" + clip + "/snapshots/s1/merges.txt", "data/" + BPEFile},
			"m/model.safetensors", map[string]string{"HF_HOME": "hf"},
			Source{Vocab: "hf/hub/" + clip + "/snapshots/s1/vocab.json", Merges: "hf/hub/" + clip + "/snapshots/s1/merges.txt"}},
		{"refs/main snapshot first", []string{"hub/" + clip + "/snapshots/a/vocab.json", "hub/" + clip + "/snapshots/a/merges.txt",
			"hub/" + clip + "/snapshots/b/vocab.json", "hub/" + clip + "/snapshots/b/merges.txt"},
			"model.safetensors", map[string]string{"HUGGINGFACE_HUB_CACHE": "hub", "refs": "hub/" + clip + "/refs/main=b"},
			Source{Vocab: "hub/" + clip + "/snapshots/b/vocab.json", Merges: "hub/" + clip + "/snapshots/b/merges.txt"}},
		{"sd1.5 repository", []string{"home/.cache/huggingface/hub/models--runwayml--stable-diffusion-v1-5/snapshots/x/tokenizer/vocab.json",
			"home/.cache/huggingface/hub/models--runwayml--stable-diffusion-v1-5/snapshots/x/tokenizer/merges.txt"},
			"model.safetensors", nil, Source{
				Vocab:  "home/.cache/huggingface/hub/models--runwayml--stable-diffusion-v1-5/snapshots/x/tokenizer/vocab.json",
				Merges: "home/.cache/huggingface/hub/models--runwayml--stable-diffusion-v1-5/snapshots/x/tokenizer/merges.txt"}},
		{"data folder last", []string{"data/tokenizer/vocab.json", "data/tokenizer/merges.txt"},
			"m/model.safetensors", nil, Source{Vocab: "data/tokenizer/vocab.json", Merges: "data/tokenizer/merges.txt"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := isolate(t)
			touch(t, root, c.files...)
			for k, v := range c.env {
				if k == "refs" {
					p, ref, _ := strings.Cut(v, "=")
					touch(t, root, p)
					os.WriteFile(filepath.Join(root, p), []byte(ref+"\n"), 0o644)
					continue
				}
				t.Setenv(k, filepath.Join(root, v))
			}
			ckpt := filepath.Join(root, c.ckpt)
			if strings.HasSuffix(c.ckpt, "/") {
				os.MkdirAll(ckpt, 0o755)
			}
			got, err := Locate(ckpt, filepath.Join(root, "data"))
			if err != nil {
				t.Fatal(err)
			}
			abs := func(p string) string {
				if p == "" {
					return ""
				}
				return filepath.Join(root, p)
			}
			want := Source{BPE: abs(c.want.BPE), Vocab: abs(c.want.Vocab), Merges: abs(c.want.Merges)}
			if got != want {
				t.Errorf("Locate = %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLocateNotFound(t *testing.T) {
	root := isolate(t)
	t.Setenv("HF_HOME", filepath.Join(root, "hf"))
	touch(t, root, "m/vocab.json")
	ckpt := filepath.Join(root, "m", "v1-5-pruned.safetensors")
	_, err := Locate(ckpt, filepath.Join(root, "data"))
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("Locate error = %v, want *NotFoundError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		ckpt, BPEFile, "vocab.json with merges.txt",
		filepath.Join(root, "m", BPEFile),
		filepath.Join(root, "m", "tokenizer", VocabFile),
		filepath.Join(root, "hf", "hub", "models--openai--clip-vit-large-patch14", "snapshots", "*", VocabFile),
		filepath.Join(root, "home", ".cache", "huggingface", "hub"),
		filepath.Join(root, "data", BPEFile),
		"Found only " + filepath.Join(root, "m", VocabFile) + " without merges.txt",
		"beside the checkpoint or in the data folder, or name one directly",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message lacks %q:\n%s", want, msg)
		}
	}
	// the places in search order: beside, hub cache, data folder
	iBeside := strings.Index(msg, filepath.Join(root, "m", BPEFile))
	iHub := strings.Index(msg, filepath.Join(root, "hf", "hub"))
	iData := strings.Index(msg, filepath.Join(root, "data", BPEFile))
	if !(iBeside < iHub && iHub < iData) {
		t.Errorf("places out of order (%d, %d, %d):\n%s", iBeside, iHub, iData, msg)
	}
}

// TestLocateLoad finds golden files linked into a hub cache snapshot, as the
// cache links its blobs, and loads them.
func TestLocateLoad(t *testing.T) {
	src := filepath.Join(golden.Dir(t), "tiny_diffusers", "tokenizer")
	root := isolate(t)
	t.Setenv("HF_HUB_CACHE", filepath.Join(root, "cache"))
	snap := filepath.Join(root, "cache", "models--openai--clip-vit-large-patch14", "snapshots", "0123")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{VocabFile, MergesFile} {
		if err := os.Symlink(filepath.Join(src, n), filepath.Join(snap, n)); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	found, err := Locate(filepath.Join(root, "model.safetensors"), "")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Load(found)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Encode("a photograph of an astronaut riding a horse"), goldenBPE(t, false).Encode("a photograph of an astronaut riding a horse"); !slices.Equal(got, want) {
		t.Errorf("located tokenizer gives %v, want %v", got, want)
	}
}
