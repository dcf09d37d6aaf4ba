package tokenizer

import (
	"slices"
	"sync"
	"testing"
)

// Options.Words adds words for one call: they get their ids where they
// stand alone (case-insensitively, also in emphasis and long prompts), the
// tokenizer is unchanged for other calls, and they shadow AddToken words.
func TestPerCallWords(t *testing.T) {
	tok := goldenBPE(t, true)
	words := map[string]int{"<Tubby>": 49408, "<pot>": 49409}
	chunks, err := tok.Prompt("a <TUBBY> next to a <pot>, tubby", Options{Words: words})
	if err != nil {
		t.Fatal(err)
	}
	a, next, to, comma, tubby := tok.Encode("a"), tok.Encode("next"), tok.Encode("to"), tok.Encode(","), tok.Encode("tubby")
	want := slices.Concat(a, []int{49408}, next, to, a, []int{49409}, comma, tubby)
	if got := chunks[0].IDs[1 : 1+len(want)]; !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	plain, err := tok.Prompt("a <TUBBY> next to a <pot>, tubby", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(plain[0].IDs[:], 49408) || !slices.Equal(plain[0].IDs[1:1+len(tok.Encode("a <tubby>"))], tok.Encode("a <tubby>")) {
		t.Errorf("a call without words saw them: %v", plain[0].IDs[:12])
	}
	// Emphasis and chunking.
	em, err := tok.Prompt("(<tubby>:1.5) "+repeatWord("cat", 80), Options{Words: words, Emphasis: true, Chunks: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(em) != 2 || em[0].IDs[1] != 49408 || em[0].Weights[1] != 1.5 {
		t.Errorf("emphasis/chunks: %d chunks, first id %d weight %g", len(em), em[0].IDs[1], em[0].Weights[1])
	}
	// Shadowing an added word.
	if _, err := tok.AddToken("<pot>"); err != nil {
		t.Fatal(err)
	}
	sh, err := tok.Prompt("<pot>", Options{Words: map[string]int{"<pot>": 60000}})
	if err != nil || sh[0].IDs[1] != 60000 {
		t.Errorf("per-call word did not shadow the added one: %v, %v", sh[0].IDs[:3], err)
	}
	for _, bad := range []map[string]int{{"": 49408}, {"two words": 49408}, {"<x>": -1}, {"<X>": 49408, "<x>": 49409}} {
		if _, err := tok.Prompt("a", Options{Words: bad}); err == nil {
			t.Errorf("words %v: no error", bad)
		}
	}
}

// Calls with different words run at once on one tokenizer (for -race).
func TestPerCallWordsConcurrent(t *testing.T) {
	tok := goldenBPE(t, true)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := map[string]int{"<w>": 50000 + g}
			for range 30 {
				c, err := tok.Prompt("a <w> here", Options{Words: w})
				if err != nil || c[0].IDs[2] != 50000+g {
					t.Errorf("goroutine %d: %v, %v", g, c[0].IDs[:4], err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func repeatWord(w string, n int) string {
	s := w
	for range n - 1 {
		s += " " + w
	}
	return s
}
