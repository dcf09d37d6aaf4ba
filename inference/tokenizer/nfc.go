package tokenizer

import (
	"sort"
	"strings"
	"sync"
)

//go:generate sh -c "python3 gen_tables.py > unicode_tables.go && gofmt -w unicode_tables.go"

// A minimal Unicode NFC (UAX #15) for ftfy's final normalisation, from the
// tables in unicode_tables.go (Unicode 14.0, as Python 3.11):
//  1. characters that NFC replaces on their own (Ω sign -> Ω, U+0958 -> क़
//     decomposed, CJK compatibility ideographs) are replaced;
//  2. each run of combining marks is put in canonical order (stable sort by
//     combining class);
//  3. canonical composition, with blocking, over the primary composites and
//     the Hangul syllable arithmetic.
//
// Limit: precomposed characters are not decomposed first, so a mark that
// sorts before the marks inside a precomposed letter is not merged into it
// ("ê" + U+0323 stays two characters where NFC gives "ệ"). Text typed or
// pasted in NFD (macOS file names, "e" + U+0301) and ordinary NFC text come
// out exactly as NFC.

// cccRun is a run of code points with one non-zero combining class.
type cccRun struct {
	lo, hi rune
	class  uint8
}

// uniTables are the parsed tables of unicode_tables.go.
type uniTables struct {
	pairs   map[uint64]rune // starter<<32|mark -> composite
	singles map[rune]string // NFC of characters it replaces on their own
	ccc     []cccRun        // sorted by lo
	width   map[rune]string // ftfy's full-/half-width map
}

// unicodeTables parses the generated tables once (read-only afterwards).
var unicodeTables = sync.OnceValue(func() *uniTables {
	t := &uniTables{pairs: map[uint64]rune{}}
	p := []rune(nfcPairs)
	for i := 0; i+2 < len(p); i += 3 {
		t.pairs[uint64(p[i])<<32|uint64(p[i+1])] = p[i+2]
	}
	c := []rune(combiningClasses)
	for i := 0; i+2 < len(c); i += 3 {
		t.ccc = append(t.ccc, cccRun{c[i], c[i+1], uint8(c[i+2])})
	}
	t.singles = parseMap(nfcSingles)
	t.width = parseMap(widthForms)
	return t
})

// parseMap reads NUL-terminated entries "key rune, replacement".
func parseMap(s string) map[rune]string {
	m := map[rune]string{}
	for _, e := range strings.Split(s, "\x00") {
		if r := []rune(e); len(r) > 1 {
			m[r[0]] = string(r[1:])
		}
	}
	return m
}

// combiningClass is r's canonical combining class.
func (t *uniTables) combiningClass(r rune) uint8 {
	if r < 0x300 {
		return 0
	}
	i := sort.Search(len(t.ccc), func(i int) bool { return t.ccc[i].hi >= r })
	if i < len(t.ccc) && t.ccc[i].lo <= r {
		return t.ccc[i].class
	}
	return 0
}

// Hangul syllable arithmetic (Unicode 3.12).
const (
	hangulBase = 0xAC00
	jamoL      = 0x1100
	jamoV      = 0x1161
	jamoT      = 0x11A7
	countV     = 21
	countT     = 28
	countLV    = 19 * countV * countT
)

// compose returns the primary composite of a starter and a following
// character, if any.
func (t *uniTables) compose(a, b rune) (rune, bool) {
	if a >= jamoL && a < jamoL+19 && b >= jamoV && b < jamoV+countV {
		return hangulBase + ((a-jamoL)*countV+(b-jamoV))*countT, true
	}
	if a >= hangulBase && a < hangulBase+countLV && (a-hangulBase)%countT == 0 && b > jamoT && b < jamoT+countT {
		return a + (b - jamoT), true
	}
	c, ok := t.pairs[uint64(a)<<32|uint64(b)]
	return c, ok
}

// nfc normalises s (see the file comment for the one limit).
func nfc(s string) string {
	quick := true
	for _, r := range s {
		if r >= 0x300 {
			quick = false
			break
		}
	}
	if quick {
		return s
	}
	t := unicodeTables()
	rs := make([]rune, 0, len(s))
	for _, r := range s {
		if rep, ok := t.singles[r]; ok {
			rs = append(rs, []rune(rep)...)
		} else {
			rs = append(rs, r)
		}
	}
	// canonical order of each run of non-starters
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && t.combiningClass(rs[j]) != 0 {
			j++
		}
		if j-i > 1 {
			run := rs[i:j]
			sort.SliceStable(run, func(a, b int) bool { return t.combiningClass(run[a]) < t.combiningClass(run[b]) })
		}
		i = max(j, i+1)
	}
	out := rs[:0] // composes in place: writes never pass reads
	starter := -1 // index in out of the last starter
	var prev uint8
	for _, r := range rs {
		cc := t.combiningClass(r)
		if starter >= 0 {
			adjacent := starter == len(out)-1
			if adjacent || prev != 0 && prev < cc {
				if c, ok := t.compose(out[starter], r); ok {
					out[starter] = c
					continue
				}
			}
		}
		if cc == 0 {
			starter = len(out)
		}
		prev = cc
		out = append(out, r)
	}
	return string(out)
}
