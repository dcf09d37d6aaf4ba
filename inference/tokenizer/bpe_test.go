package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMergeWordHeap checks the O(n log n) merge against the reference one
// on random words from several scripts, short and long.
func TestMergeWordHeap(t *testing.T) {
	tok := goldenBPE(t, false)
	if !tok.ordered {
		t.Fatal("CLIP's merges should be ordered")
	}
	alphabets := []string{"abcdefghijklmnopqrstuvwxyz", "aeiou", "ab", "éèàçôñü", "日本語のテキスト猫", "привет", "!?.,-*#", "a1😀"}
	r := rand.New(rand.NewPCG(7, 11))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for k := range n {
		alpha := []rune(alphabets[k%len(alphabets)])
		length := 1 + r.IntN(12)
		if k%10 == 0 {
			length = 50 + r.IntN(400)
		}
		var b strings.Builder
		for range length {
			b.WriteRune(alpha[r.IntN(len(alpha))])
		}
		w := b.String()
		if got, want := tok.mergeWordHeap(w), tok.mergeWord(w); !slices.Equal(got, want) {
			t.Fatalf("mergeWordHeap(%q) = %v, mergeWord = %v", w, got, want)
		}
	}
}

// TestLongWord checks that a very long word is not quadratic (a pasted
// blob must not freeze the UI); the bound is loose, not a timing test.
func TestLongWord(t *testing.T) {
	if testing.Short() {
		t.Skip("long input")
	}
	tok := goldenBPE(t, false)
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 200000)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	start := time.Now()
	ids := tok.Encode(string(b))
	if len(ids) == 0 || len(ids) > len(b) {
		t.Fatalf("%d ids for %d letters", len(ids), len(b))
	}
	t.Logf("200k-letter word: %d ids in %v", len(ids), time.Since(start))
}

func BenchmarkEncode(b *testing.B) {
	tok := goldenBPE(b, false)
	prompt := "masterpiece, best quality, a highly detailed digital painting of a majestic castle on a cliff above a stormy sea at sunset"
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			tok.Encode(prompt)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			tok.mu.Lock()
			clear(tok.cache)
			tok.mu.Unlock()
			tok.Encode(prompt)
		}
	})
}
