package captions

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

func TestDefaultCountAndUniqueness(t *testing.T) {
	c := Default()
	if len(c) != DefaultCount || DefaultCount < 3000 {
		t.Fatalf("%d captions (DefaultCount %d), want at least 3000", len(c), DefaultCount)
	}
	seen := map[string]bool{}
	for i, s := range c {
		if seen[s] {
			t.Fatalf("caption %d %q repeats", i, s)
		}
		seen[s] = true
		if s == "" || strings.TrimSpace(s) != s || strings.Contains(s, "  ") {
			t.Errorf("caption %d %q: empty or badly spaced", i, s)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, _ := Generate(500, 9)
	b, _ := Generate(500, 9)
	if !slices.Equal(a, b) {
		t.Fatal("two runs with the same seed differ")
	}
	short, _ := Generate(100, 9)
	if !slices.Equal(short, a[:100]) {
		t.Error("Generate(100) is not a prefix of Generate(500)")
	}
	other, _ := Generate(500, 10)
	same := 0
	for i := range a {
		if a[i] == other[i] {
			same++
		}
	}
	if same > 10 {
		t.Errorf("seeds 9 and 10 agree on %d of 500 captions", same)
	}
	if Hash(a) != Hash(b) || Hash(a) == Hash(other) {
		t.Error("Hash does not follow the captions")
	}
	// A fixed point of the generator: changing the word lists, templates
	// or generator must bump Version (and update this).
	if got := Hash(Default()); Version == 1 && got != defaultHashV1 {
		t.Errorf("the default corpus changed (hash %s): bump Version and update defaultHashV1", got)
	}
	if _, err := Generate(-1, 1); err == nil {
		t.Error("negative count: no error")
	}
}

const defaultHashV1 = "a3527d3ab50cae12388894b9489bae2101e7d9136926e6d52a6125564bffe616"

func TestVariety(t *testing.T) {
	c := Default()
	text := " " + strings.Join(c, " \n ") + " "
	for _, cat := range []struct {
		name string
		list []string
		min  float64 // fraction of the list that must appear
	}{
		{"animals", animals, 0.95}, {"objects", objects, 0.95}, {"people", people, 0.95},
		{"places", places, 0.95}, {"styles", styles, 0.95}, {"actions", actions, 0.95},
		{"compositions", compositions, 0.95}, {"colours", colours, 0.95}, {"lighting", lighting, 0.95},
		{"backgrounds", backgrounds, 0.95}, {"modifiers", styleSuffixes, 0.95},
	} {
		n := 0
		for _, w := range cat.list {
			if strings.Contains(text, " "+w+" ") || strings.Contains(text, " "+w+",") || strings.Contains(text, " "+w+".") || strings.Contains(text, "\n "+w) {
				n++
			}
		}
		if f := float64(n) / float64(len(cat.list)); f < cat.min {
			t.Errorf("%s: %d of %d words appear", cat.name, n, len(cat.list))
		}
	}
	// many distinct words, first words and lengths
	words, firsts, lengths := map[string]bool{}, map[string]bool{}, map[int]int{}
	for _, s := range c {
		f := strings.Fields(s)
		firsts[f[0]] = true
		lengths[len(f)]++
		for _, w := range f {
			words[strings.Trim(w, ",.")] = true
		}
	}
	if len(words) < 500 || len(firsts) < 50 || len(lengths) < 15 {
		t.Errorf("%d distinct words, %d first words, %d lengths: want ≥ 500, 50, 15", len(words), len(firsts), len(lengths))
	}
	// no template dominates: every template's signature is common
	for _, sig := range []string{"portrait of ", " made of ", " can be seen ", " background", "the ", " and ", ", "} {
		k := 0
		for _, s := range c {
			if strings.Contains(s, sig) {
				k++
			}
		}
		if k < len(c)/80 {
			t.Errorf("only %d captions contain %q", k, sig)
		}
	}
}

// Every caption fits SD1.5's 75 tokens, so the encodings see it whole.
func TestCaptionsFitOneChunk(t *testing.T) {
	f, err := os.Open(golden.Path(t, "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGzipBPE(f)
	if err != nil {
		t.Fatal(err)
	}
	longest := 0
	for _, s := range Default() {
		longest = max(longest, len(tok.Encode(s)))
	}
	if longest > tokenizer.ChunkTokens {
		t.Errorf("a caption has %d tokens, more than %d", longest, tokenizer.ChunkTokens)
	}
	t.Logf("longest caption: %d tokens", longest)
}
