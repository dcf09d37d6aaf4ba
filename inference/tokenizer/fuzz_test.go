package tokenizer

import (
	"strings"
	"testing"
)

// FuzzEncode checks that Encode, IDs77, Prompt and Decode never panic on
// arbitrary bytes and always return ids inside the vocabulary.
// Run longer with: go test ./inference/tokenizer -run '^$' -fuzz FuzzEncode -fuzztime 60s
func FuzzEncode(f *testing.F) {
	for _, s := range []string{
		"", "a photograph of an astronaut riding a horse", "\xff\xfe\x00\x80", "sÃ©ance â€™ ðŸ˜€",
		"&amp;amp; &#99999999999; &#x; &EACUTE; < &lt;", "ΟΔΟΣ İ ﬁ ＡＢＣ ｶﾞ e\u0301\u0323",
		"a (((house:1.3)) [on] \\( BREAK (x:1.2.3) ((", "<|startoftext|><|endoftext|>'s'S'ſ",
		strings.Repeat("a, ", 100), "\x1b[31mred\x1b[0m\r\n\u2028\u0085",
	} {
		f.Add(s)
	}
	tok := goldenBPE(f, true)
	if _, err := tok.AddToken("<fuzz-token>"); err != nil {
		f.Fatal(err)
	}
	n := tok.VocabSize()
	valid := func(t *testing.T, what string, ids []int) {
		for _, id := range ids {
			if id < 0 || id >= n {
				t.Fatalf("%s: id %d outside [0, %d)", what, id, n)
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		valid(t, "Encode", tok.Encode(s))
		ids := tok.IDs77(s)
		if len(ids) != ContextLen || ids[0] != tok.BOS() || ids[ContextLen-1] != tok.EOS() {
			t.Fatalf("IDs77 layout %v", ids)
		}
		valid(t, "IDs77", ids)
		for _, opt := range []Options{{}, {Emphasis: true}, {Chunks: true}, {Emphasis: true, Chunks: true}} {
			chunks, err := tok.Prompt(s, opt)
			if err != nil {
				if !opt.Emphasis {
					t.Fatalf("Prompt(%+v): %v", opt, err)
				}
				continue
			}
			if len(chunks) == 0 {
				t.Fatalf("Prompt(%+v): no chunks", opt)
			}
			for _, c := range chunks {
				valid(t, "Prompt", c.IDs[:])
				if c.IDs[0] != tok.BOS() || c.IDs[ContextLen-1] != tok.EOS() || c.Weights[0] != 1 {
					t.Fatalf("Prompt(%+v) layout %v", opt, c.IDs)
				}
			}
		}
		_ = tok.Decode(ids)
	})
}
