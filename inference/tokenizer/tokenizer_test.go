package tokenizer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

// tokenizerCases is tokenizer_cases.json.
type tokenizerCases struct {
	BOS       int `json:"bos"`
	EOS       int `json:"eos"`
	Pad       int `json:"pad"`
	MaxLength int `json:"max_length"`
	Cases     []struct {
		Name       string   `json:"name"`
		Text       string   `json:"text"`
		BPEIDs     []int    `json:"bpe_ids"`
		BPETokens  []string `json:"bpe_tokens"`
		IDs77      []int    `json:"ids_77"`
		Truncated  bool     `json:"truncated"`
		HFDiffers  bool     `json:"hf_preprocessing_differs"`
		HFBPEIDs   []int    `json:"hf_bpe_ids"`
		HFIDs77    []int    `json:"hf_ids_77"`
		FtfyChange bool     `json:"ftfy_changes_result"`
	} `json:"cases"`
}

// loaded caches one parse of each golden vocabulary per test binary.
var loaded sync.Map // path -> *Tokenizer

// goldenBPE loads the golden bpe_simple_vocab_16e6.txt.gz (a fresh
// Tokenizer when fresh is set, for tests that add tokens).
func goldenBPE(t testing.TB, fresh bool) *Tokenizer {
	t.Helper()
	return loadOnce(t, Source{BPE: golden.Path(t, BPEFile)}, fresh)
}

// goldenHF loads the golden diffusers tokenizer folder.
func goldenHF(t testing.TB) *Tokenizer {
	t.Helper()
	dir := filepath.Join(golden.Dir(t), "tiny_diffusers", "tokenizer")
	return loadOnce(t, Source{Vocab: filepath.Join(dir, VocabFile), Merges: filepath.Join(dir, MergesFile)}, false)
}

func loadOnce(t testing.TB, src Source, fresh bool) *Tokenizer {
	t.Helper()
	if v, ok := loaded.Load(src.String()); ok && !fresh {
		return v.(*Tokenizer)
	}
	tok, err := Load(src)
	if err != nil {
		t.Fatalf("load %s: %v", src, err)
	}
	if !fresh {
		loaded.Store(src.String(), tok)
	}
	return tok
}

func TestGoldenCases(t *testing.T) {
	var doc tokenizerCases
	golden.JSON(t, "tokenizer_cases.json", &doc)
	if len(doc.Cases) == 0 {
		t.Fatal("tokenizer_cases.json has no cases")
	}
	for _, src := range []struct {
		name string
		tok  *Tokenizer
	}{{"bpe.gz", goldenBPE(t, false)}, {"vocab+merges", goldenHF(t)}} {
		tok := src.tok
		if tok.BOS() != doc.BOS || tok.EOS() != doc.EOS || tok.EOS() != doc.Pad {
			t.Fatalf("%s: BOS/EOS %d/%d, golden %d/%d pad %d", src.name, tok.BOS(), tok.EOS(), doc.BOS, doc.EOS, doc.Pad)
		}
		if doc.MaxLength != ContextLen {
			t.Fatalf("golden max_length %d, ContextLen %d", doc.MaxLength, ContextLen)
		}
		for _, c := range doc.Cases {
			got := tok.Encode(c.Text)
			if !slices.Equal(got, c.BPEIDs) {
				t.Errorf("%s %s: Encode(%q)\n got %v\nwant %v (%q)", src.name, c.Name, c.Text, got, c.BPEIDs, c.BPETokens)
			}
			if got := tok.IDs77(c.Text); !slices.Equal(got, c.IDs77) {
				t.Errorf("%s %s: IDs77\n got %v\nwant %v", src.name, c.Name, got, c.IDs77)
			}
			for i, id := range c.BPEIDs {
				if tok.Token(id) != c.BPETokens[i] {
					t.Errorf("%s %s: Token(%d) = %q, want %q", src.name, c.Name, id, tok.Token(id), c.BPETokens[i])
				}
			}
		}
	}
}

// TestGoldenHFCleaning checks SkipHTMLUnescape against hf_bpe_ids / hf_ids_77
// (Hugging Face's CLIPTokenizer), and that it agrees with the reference on
// every case not marked as differing.
func TestGoldenHFCleaning(t *testing.T) {
	var doc tokenizerCases
	golden.JSON(t, "tokenizer_cases.json", &doc)
	tok, err := Load(Source{BPE: golden.Path(t, BPEFile)})
	if err != nil {
		t.Fatal(err)
	}
	tok.SkipHTMLUnescape = true
	differs := 0
	for _, c := range doc.Cases {
		wantBPE, want77 := c.BPEIDs, c.IDs77
		if c.HFDiffers {
			differs++
			wantBPE, want77 = c.HFBPEIDs, c.HFIDs77
		}
		if got := tok.Encode(c.Text); !slices.Equal(got, wantBPE) {
			t.Errorf("%s: HF Encode(%q) = %v, want %v", c.Name, c.Text, got, wantBPE)
		}
		if got := tok.IDs77(c.Text); !slices.Equal(got, want77) {
			t.Errorf("%s: HF IDs77 = %v, want %v", c.Name, got, want77)
		}
	}
	if differs == 0 {
		t.Log("no case marked hf_preprocessing_differs")
	}
}

// TestSourcesAgree checks that the BPE file and vocab.json + merges.txt give
// the same vocabulary and merges, id for id.
func TestSourcesAgree(t *testing.T) {
	a, b := goldenBPE(t, false), goldenHF(t)
	if !slices.Equal(a.tokens, b.tokens) {
		t.Fatalf("vocabularies differ: %d vs %d tokens", len(a.tokens), len(b.tokens))
	}
	if len(a.tokens) != 49408 {
		t.Errorf("vocabulary size %d, want 49408", len(a.tokens))
	}
	if len(a.merges) != len(b.merges) || len(a.merges) != clipMerges {
		t.Fatalf("merges %d vs %d, want %d", len(a.merges), len(b.merges), clipMerges)
	}
	for k, m := range a.merges {
		if b.merges[k] != m {
			t.Fatalf("merge %x: %v vs %v", k, m, b.merges[k])
		}
	}
	if a.byteSym != b.byteSym || a.byteEnd != b.byteEnd || a.comma != b.comma {
		t.Fatal("byte symbols or comma id differ")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := write("short.txt", "#version: 0.2\ni n\nt h\n")
	badVocab := write("vocab.json", `{"a": 0, "b": 0}`)
	merges := write("merges.txt", "#version: 0.2\na b\n")
	for _, c := range []struct {
		src  Source
		want string
	}{
		{Source{BPE: filepath.Join(dir, "missing.gz")}, "no such file"},
		{Source{BPE: short}, "has 2 merges, CLIP needs 48894"},
		{Source{Vocab: badVocab, Merges: merges}, "ids must be 0..1"},
		{Source{}, "empty source"},
	} {
		_, err := Load(c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%+v) = %v, want an error containing %q", c.src, err, c.want)
		}
	}
}

func TestDecode(t *testing.T) {
	tok := goldenBPE(t, false)
	// each piece ends in "</w>", decoded as a space: contractions and digits
	// (one per piece) come back spaced out
	for _, c := range [][2]string{
		{"a photograph of an astronaut riding a horse", "a photograph of an astronaut riding a horse"},
		{"Café crème 日本語 🐱 it's 42", "café crème 日本語 🐱 it 's 4 2"},
	} {
		if got := strings.TrimSpace(tok.Decode(tok.Encode(c[0]))); got != c[1] {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", c[0], got, c[1])
		}
	}
}

func TestLookupAndAddToken(t *testing.T) {
	tok := goldenBPE(t, true)
	dog, ok := tok.Lookup("Dog")
	if !ok || len(dog) != 1 || tok.Token(dog[0]) != "dog</w>" {
		t.Fatalf("Lookup(Dog) = %v, %v", dog, ok)
	}
	if ids, ok := tok.Lookup("  "); ok || len(ids) != 0 {
		t.Errorf("Lookup of blank = %v, %v", ids, ok)
	}
	before := tok.Encode("a <cat-toy> on sks, sksy asks")
	id, err := tok.AddToken("<Cat-Toy>")
	if err != nil || id != 49408 {
		t.Fatalf("AddToken = %d, %v; want 49408", id, err)
	}
	id2, err := tok.AddToken("sks")
	if err != nil || id2 != 49409 {
		t.Fatalf("second AddToken = %d, %v; want 49409", id2, err)
	}
	if again, err := tok.AddToken("SKS"); again != id2 || !errors.Is(err, ErrTokenExists) {
		t.Errorf("re-adding = %d, %v; want %d and ErrTokenExists", again, err, id2)
	}
	for _, bad := range []string{"", "two words", "<|endoftext|>"} {
		if _, err := tok.AddToken(bad); err == nil {
			t.Errorf("AddToken(%q) succeeded", bad)
		}
	}
	if tok.VocabSize() != 49410 {
		t.Errorf("VocabSize = %d", tok.VocabSize())
	}
	a, on, comma := tok.Encode("a"), tok.Encode("on"), tok.Encode(",")
	sksy, asks := tok.Encode("sksy"), tok.Encode("asks")
	// "sksy" and "asks" glue the word to letters: no added token there
	want := slices.Concat(a, []int{id}, on, []int{id2}, comma, sksy, asks)
	got := tok.Encode("A <CAT-TOY> on sks, sksy asks")
	if !slices.Equal(got, want) {
		t.Errorf("Encode with added tokens = %v, want %v (before adding: %v)", got, want, before)
	}
	if ids, ok := tok.Lookup("<cat-toy>"); !ok || !slices.Equal(ids, []int{id}) {
		t.Errorf("Lookup(<cat-toy>) = %v", ids)
	}
	if d := tok.Decode([]int{tok.BOS(), id, id2, tok.EOS()}); d != "<|startoftext|><cat-toy> sks <|endoftext|>" {
		t.Errorf("Decode = %q", d)
	}
}

// TestConcurrentUse runs Encode, Prompt and AddToken at once (for -race).
func TestConcurrentUse(t *testing.T) {
	tok := goldenBPE(t, true)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				tok.Encode("a (photo) of word" + strings.Repeat("x", i%7))
				if _, err := tok.Prompt("a (b:1.2), c", Options{Emphasis: true, Chunks: true}); err != nil {
					t.Error(err)
				}
				if g == 0 && i%10 == 0 {
					tok.AddToken("tok" + strings.Repeat("z", i))
				}
			}
		}()
	}
	wg.Wait()
}
