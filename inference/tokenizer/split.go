package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// pieces splits cleaned text as CLIP's regex does and calls fn for each piece
// (added < 0) or added word (its id): the words of AddToken and the per-call
// words of extra (nil: none), which shadow them. Added words are cut out
// first, where they are not glued to letters or digits; the text between is
// split by splitRegex.
func (t *Tokenizer) pieces(s string, extra *callWords, fn func(piece string, added int)) {
	words := t.addedWords()
	id := t.addedID
	if extra != nil {
		words = extra.merge(words)
		id = func(w string) int {
			if v, ok := extra.ids[w]; ok {
				return v
			}
			return t.addedID(w)
		}
	}
	if words == nil {
		splitRegex(s, func(p string) { fn(p, -1) })
		return
	}
	start := 0
	for i := 0; i < len(s); {
		w := matchAdded(s, i, words)
		if w == "" {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			continue
		}
		splitRegex(s[start:i], func(p string) { fn(p, -1) })
		fn(w, id(w))
		i += len(w)
		start = i
	}
	splitRegex(s[start:], func(p string) { fn(p, -1) })
}

// matchAdded returns the longest added word at s[i:] that is not glued to a
// letter or digit on a side where the word itself has one.
func matchAdded(s string, i int, words []string) string {
	for _, w := range words {
		if !strings.HasPrefix(s[i:], w) {
			continue
		}
		first, _ := utf8.DecodeRuneInString(w)
		last, _ := utf8.DecodeLastRuneInString(w)
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[i+len(w):])
		if i > 0 && isWordRune(first) && isWordRune(before) {
			continue
		}
		if i+len(w) < len(s) && isWordRune(last) && isWordRune(after) {
			continue
		}
		return w
	}
	return ""
}

// isWordRune reports a letter or number (\p{L} or \p{N}).
func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }

// splitRegex calls fn for each match, left to right, of CLIP's pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// (case-insensitive): at each position the first alternative that matches
// wins; whitespace matches none and is skipped.
func splitRegex(s string, fn func(string)) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n := 0
		switch {
		case isPySpace(r):
			i += size
			continue
		case r == '<' && (hasPrefixFold(s[i:], startToken) > 0 || hasPrefixFold(s[i:], endToken) > 0):
			n = max(hasPrefixFold(s[i:], startToken), hasPrefixFold(s[i:], endToken))
		case r == '\'' && contraction(s[i:]) > 0:
			n = contraction(s[i:])
		case unicode.IsLetter(r):
			n = runWhile(s[i:], unicode.IsLetter)
		case unicode.IsNumber(r):
			n = size
		default:
			n = runWhile(s[i:], func(r rune) bool { return !isPySpace(r) && !isWordRune(r) })
		}
		fn(s[i : i+n])
		i += n
	}
}

// contraction returns the byte length of the contraction at the start of s.
func contraction(s string) int {
	for _, c := range [...]string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} { // regex order
		if n := hasPrefixFold(s, c); n > 0 {
			return n
		}
	}
	return 0
}

// hasPrefixFold returns the byte length of the prefix of s that equals the
// ASCII string p under simple case folding (so 'ſ' matches 's'), or 0.
func hasPrefixFold(s, p string) int {
	n := 0
	for k := 0; k < len(p); k++ {
		r, size := utf8.DecodeRuneInString(s[n:])
		if size == 0 || foldRune(r) != rune(p[k]) {
			return 0
		}
		n += size
	}
	return n
}

// foldRune is the simple case folding of r, as far as ASCII targets go.
func foldRune(r rune) rune {
	switch r {
	case 'ſ': // U+017F LATIN SMALL LETTER LONG S
		return 's'
	case 'K': // U+212A KELVIN SIGN
		return 'k'
	}
	return unicode.ToLower(r)
}

// runWhile returns the byte length of the longest prefix of s whose runes
// all satisfy ok.
func runWhile(s string, ok func(rune) bool) int {
	for i, r := range s {
		if !ok(r) {
			return i
		}
	}
	return len(s)
}
