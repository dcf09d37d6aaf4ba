package tokenizer

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

// TestLoadBPEData loads the golden merges file from memory, gzipped and
// plain, and checks it gives what loading it from its path gives.
func TestLoadBPEData(t *testing.T) {
	gz, err := os.ReadFile(golden.Path(t, BPEFile))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	want := goldenBPE(t, false)
	for name, data := range map[string]string{"gzipped": string(gz), "plain": string(text)} {
		src := Source{BPEData: data}
		if s := src.String(); s != "built-in "+BPEFile {
			t.Errorf("%s: String() = %q", name, s)
		}
		got, err := Load(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(got.tokens, want.tokens) || len(got.merges) != len(want.merges) {
			t.Fatalf("%s: %d tokens, %d merges; from the file %d, %d", name, len(got.tokens), len(got.merges), len(want.tokens), len(want.merges))
		}
		for k, m := range want.merges {
			if got.merges[k] != m {
				t.Fatalf("%s: merge %x: %v, from the file %v", name, k, got.merges[k], m)
			}
		}
		if p := "a photograph of an astronaut riding a horse"; !slices.Equal(got.IDs77(p), want.IDs77(p)) {
			t.Errorf("%s: IDs77(%q) differs from the file's", name, p)
		}
	}
}

// A path, or a vocab.json + merges.txt pair, wins over BPEData.
func TestLoadBPEDataOrder(t *testing.T) {
	junk := "not a vocabulary"
	if _, err := Load(Source{BPEData: junk}); err == nil || !strings.Contains(err.Error(), "built-in "+BPEFile) {
		t.Fatalf("junk BPEData: %v, want an error naming the built-in file", err)
	}
	if _, err := Load(Source{BPE: golden.Path(t, BPEFile), BPEData: junk}); err != nil {
		t.Errorf("BPE path with junk BPEData: %v", err)
	}
	dir := filepath.Join(golden.Dir(t), "tiny_diffusers", "tokenizer")
	pair := Source{Vocab: filepath.Join(dir, VocabFile), Merges: filepath.Join(dir, MergesFile), BPEData: junk}
	if _, err := Load(pair); err != nil {
		t.Errorf("vocab.json + merges.txt with junk BPEData: %v", err)
	}
	if s := pair.String(); s != pair.Vocab+" + "+pair.Merges {
		t.Errorf("String() of a pair with BPEData = %q", s)
	}
	if _, err := Load(Source{BPEData: "#version: 0.2\ni n\n"}); err == nil || !strings.Contains(err.Error(), "has 1 merges") {
		t.Errorf("short BPEData: %v", err)
	}
}
