package bpe

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
)

// load writes v and reads it back with the project's tokenizer.
func load(t *testing.T, v *Vocab) *tokenizer.Tokenizer {
	t.Helper()
	dir := t.TempDir()
	if err := v.Write(dir); err != nil {
		t.Fatal(err)
	}
	vf, err := os.Open(filepath.Join(dir, VocabFile))
	if err != nil {
		t.Fatal(err)
	}
	defer vf.Close()
	mf, err := os.Open(filepath.Join(dir, MergesFile))
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	tok, err := tokenizer.FromVocabMerges(vf, mf)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkVocab checks that the tokenizer splits every text as Vocab.Encode
// does and that each required word is one token.
func checkVocab(t *testing.T, v *Vocab, texts, required []string) {
	t.Helper()
	tok := load(t, v)
	if tok.VocabSize() != len(v.Tokens) {
		t.Fatalf("tokenizer has %d ids, vocabulary %d", tok.VocabSize(), len(v.Tokens))
	}
	for _, text := range texts {
		var want []string
		for _, w := range Words(text) {
			want = append(want, v.Encode(w)...)
		}
		var got []string
		for _, id := range tok.Encode(text) {
			got = append(got, tok.Token(id))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q: tokenizer gives %q, the learner %q", text, got, want)
		}
	}
	for _, w := range required {
		ids := tok.Encode(w)
		if len(ids) != 1 {
			t.Errorf("required word %q is %d tokens", w, len(ids))
		}
	}
}

func TestLearnSmall(t *testing.T) {
	texts := []string{"a cat face on a red background", "cat, dog", "grinning face", "dog face", "piñata, a café"}
	v, err := Learn(texts, 530, []string{"grinning", "piñata"})
	if err != nil {
		t.Fatal(err)
	}
	// The first merge is a most frequent pair.
	pairs := map[[2]string]int{}
	_, sym := byteSymbols()
	for _, text := range texts {
		for _, w := range Words(text) {
			s := symbols(w, &sym)
			for i := 0; i+1 < len(s); i++ {
				pairs[[2]string{s[i], s[i+1]}]++
			}
		}
	}
	for p, n := range pairs {
		if n > pairs[v.Merges[0]] {
			t.Errorf("first merge %q seen %d times, but %q %d times", v.Merges[0], pairs[v.Merges[0]], p, n)
		}
	}
	if plain, _ := Learn(texts, 530, nil); len(plain.Tokens) > 530 {
		t.Errorf("%d tokens, want at most 530", len(plain.Tokens))
	}
	checkVocab(t, v, texts, []string{"grinning", "piñata", "face"})
	again, _ := Learn(texts, 530, []string{"grinning", "piñata"})
	if !slices.Equal(again.Tokens, v.Tokens) || !slices.Equal(again.Merges, v.Merges) {
		t.Error("two runs learned different vocabularies")
	}
	if _, err := Learn(texts, 100, nil); err == nil {
		t.Error("a size below the byte symbols was accepted")
	}
	if _, err := Learn(texts, 600, []string{"two words"}); err == nil {
		t.Error("a two-word required entry was accepted")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "f.txt")
	for _, s := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(s)); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != s {
			t.Fatalf("read %q, want %q", b, s)
		}
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// The emoji captions need unicode-data and unicode-cldr-core, which CI
// does not install: skipped where the files are absent, CI or not.
func TestEmojiVocabulary(t *testing.T) {
	p := emoji.DefaultPaths()
	p.Font = ""
	if miss := p.Missing(); len(miss) > 0 {
		t.Skipf("skipped: %s absent (install unicode-data and unicode-cldr-core)", strings.Join(miss, ", "))
	}
	list, err := emoji.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	texts := emoji.Captions(emoji.WithoutHeldOut(list))
	v, err := Learn(texts, DefaultSize, emoji.Superordinates())
	if err != nil {
		t.Fatal(err)
	}
	sample := texts
	if testing.Short() {
		sample = texts[:500]
	}
	checkVocab(t, v, sample, append(emoji.Superordinates(), "red", "blue", "background"))
	t.Logf("%d captions, %d tokens, %d merges", len(texts), len(v.Tokens), len(v.Merges))
}
