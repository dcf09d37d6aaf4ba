// Package bpe learns a small byte-level BPE vocabulary (Sennrich et al.,
// "Neural Machine Translation of Rare Words with Subword Units", ACL 2016,
// in the byte-level form of GPT-2 and CLIP) from the default model's
// captions, and writes it as a Hugging Face vocab.json + merges.txt that
// inference/tokenizer reads like CLIP's own.
//
// Words are split as CLIP splits them (lower case, its regular expression)
// and end in "</w>"; the vocabulary holds the 256 byte symbols, the same
// with "</w>", one entry per merge, then <|startoftext|> and
// <|endoftext|>. The app never imports this package.
package bpe

import (
	"cmp"
	"encoding/json"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

const (
	endOfWord  = "</w>"
	startToken = "<|startoftext|>"
	endToken   = "<|endoftext|>"
	// DefaultSize is the default model's vocabulary size.
	DefaultSize = 4096
	// VocabFile and MergesFile are the names the tokenizer looks for.
	VocabFile  = "vocab.json"
	MergesFile = "merges.txt"
)

// wordRE is CLIP's pre-tokenizer (simple_tokenizer.py), without its
// special-token alternatives.
var wordRE = regexp.MustCompile(`'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`)

// Words splits text into the pieces BPE runs on: lower case, whitespace
// runs collapsed, CLIP's regular expression.
func Words(text string) []string {
	return wordRE.FindAllString(strings.ToLower(strings.Join(strings.Fields(text), " ")), -1)
}

// byteSymbols is GPT-2/CLIP's bytes_to_unicode: every byte maps to a
// printable rune; order lists the bytes printable ones first.
func byteSymbols() (order [256]byte, sym [256]rune) {
	n := 0
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	for b := range 256 {
		if printable(b) {
			order[n], sym[b] = byte(b), rune(b)
			n++
		}
	}
	extra := 0
	for b := range 256 {
		if !printable(b) {
			order[n], sym[b] = byte(b), rune(256+extra)
			n++
			extra++
		}
	}
	return order, sym
}

// Vocab is a learned vocabulary.
type Vocab struct {
	Tokens []string    // id -> token
	Merges [][2]string // in rank order
}

// symbols splits word into byte symbols, "</w>" on the last.
func symbols(word string, sym *[256]rune) []string {
	out := make([]string, len(word))
	for i := 0; i < len(word); i++ {
		out[i] = string(sym[word[i]])
	}
	out[len(out)-1] += endOfWord
	return out
}

type wordCount struct {
	syms []string
	n    int
}

// Learn learns merges from texts until the vocabulary has size tokens (or
// no pair is left), then adds the merges that make each of required a
// single token. Ties between equally frequent pairs go to the
// lexicographically smaller pair, so the result depends only on the input.
func Learn(texts []string, size int, required []string) (*Vocab, error) {
	order, sym := byteSymbols()
	v := &Vocab{}
	for _, b := range order {
		v.Tokens = append(v.Tokens, string(sym[b]))
	}
	for _, b := range order {
		v.Tokens = append(v.Tokens, string(sym[b])+endOfWord)
	}
	if size < len(v.Tokens)+2 {
		return nil, fmt.Errorf("bpe: vocabulary size %d below the %d byte symbols and 2 special tokens", size, len(v.Tokens))
	}
	counts := map[string]int{}
	for _, t := range texts {
		for _, w := range Words(t) {
			counts[w]++
		}
	}
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	slices.Sort(keys)
	words := make([]wordCount, len(keys))
	for i, w := range keys {
		words[i] = wordCount{symbols(w, &sym), counts[w]}
	}
	have := map[string]bool{}
	for _, t := range v.Tokens {
		have[t] = true
	}
	addMerge := func(a, b string) {
		v.Merges = append(v.Merges, [2]string{a, b})
		if !have[a+b] {
			have[a+b] = true
			v.Tokens = append(v.Tokens, a+b)
		}
		for i := range words {
			words[i].syms = apply(words[i].syms, a, b)
		}
	}
	for len(v.Tokens) < size-2 {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.n
			}
		}
		if len(pairs) == 0 {
			break
		}
		var best [2]string
		bestN := 0
		for p, n := range pairs {
			if n > bestN || (n == bestN && cmp.Or(cmp.Compare(p[0], best[0]), cmp.Compare(p[1], best[1])) < 0) {
				best, bestN = p, n
			}
		}
		addMerge(best[0], best[1])
	}
	for _, r := range required {
		ws := Words(r)
		if len(ws) != 1 {
			return nil, fmt.Errorf("bpe: required word %q is %d pieces for the pre-tokenizer, want 1", r, len(ws))
		}
		s := v.Encode(ws[0])
		for len(s) > 1 {
			addMerge(s[0], s[1])
			s = apply(s, s[0], s[1])
		}
	}
	v.Tokens = append(v.Tokens, startToken, endToken)
	return v, nil
}

// apply merges every adjacent (a, b) of syms, left to right.
func apply(syms []string, a, b string) []string {
	found := false
	for i := 0; i+1 < len(syms) && !found; i++ {
		found = syms[i] == a && syms[i+1] == b
	}
	if !found {
		return syms
	}
	out := make([]string, 0, len(syms)-1)
	for i := 0; i < len(syms); i++ {
		if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
			out = append(out, a+b)
			i++
			continue
		}
		out = append(out, syms[i])
	}
	return out
}

// Encode returns the tokens of one pre-tokenized word by applying the
// merges in rank order (what the tokenizer computes, without its cache).
func (v *Vocab) Encode(word string) []string {
	_, sym := byteSymbols()
	s := symbols(word, &sym)
	for _, m := range v.Merges {
		if len(s) == 1 {
			break
		}
		s = apply(s, m[0], m[1])
	}
	return s
}

// Write writes vocab.json and merges.txt into dir, each atomically.
func (v *Vocab) Write(dir string) error {
	ids := make(map[string]int, len(v.Tokens))
	for i, t := range v.Tokens {
		if _, dup := ids[t]; dup {
			return fmt.Errorf("bpe: token %q twice in the vocabulary", t)
		}
		ids[t] = i
	}
	js, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("bpe: %w", err)
	}
	var b strings.Builder
	b.WriteString("#version: 0.2\n")
	for _, m := range v.Merges {
		b.WriteString(m[0] + " " + m[1] + "\n")
	}
	if err := WriteFileAtomic(filepath.Join(dir, VocabFile), js); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, MergesFile), []byte(b.String()))
}

// WriteFileAtomic writes data to path atomically (internal/atomicfile),
// making its folder first.
func WriteFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, data)
}
