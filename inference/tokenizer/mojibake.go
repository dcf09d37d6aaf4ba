package tokenizer

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// This file is ftfy's fix_encoding for UTF-8 that was decoded as Latin-1 or
// windows-1252 ("sÃ©ance" -> "séance", "â€™" -> "’"), with ftfy's badness
// test (chardata.py / badness.py, 6.x) deciding whether text looks broken.

// Character categories of ftfy's MOJIBAKE_CATEGORIES.
const (
	catC1 = 1 << iota
	catBad
	catCurrency
	catStart
	catEnd
	catNumeric
	catKaomoji
	catUpperAcc
	catLowerAcc
	catUpperCommon
	catLowerCommon
	catBox
)

// mojibakeCats returns each categorised rune's category bits (read-only).
var mojibakeCats = sync.OnceValue(func() map[rune]int {
	m := map[rune]int{}
	add := func(c int, chars string) {
		for _, r := range chars {
			m[r] |= c
		}
	}
	span := func(lo, hi rune) string {
		var b strings.Builder
		for r := lo; r <= hi; r++ {
			b.WriteRune(r)
		}
		return b.String()
	}
	add(catC1, span(0x80, 0x9F))
	add(catBad, "¦¤¨¬¯¶¸ƒˆˇ˘˛˜†‡‰⌐◊\uFFFDªº№")
	add(catCurrency, "¢£¥₧€")
	add(catStart, "¡«¿©§΄΅‘‚“„•‹\uF8FF")
	add(catEnd, "®»˝”›™")
	add(catNumeric, "²³¹±¼½¾×µ÷⁄∂∆∏∑√∞∩∫≈≠≡≤≥")
	add(catKaomoji, span(0xD2, 0xD6)+span(0xD9, 0xDC)+span(0xF2, 0xF6)+span(0xF8, 0xFC)+"Ő°")
	add(catUpperAcc, span(0xC0, 0xD1)+"ØÜÝĂĄĆČĎĐĘĚĞİĹĽŁŃŇŒŘŚŞŠŢŤŮŰŸŹŻŽҐ")
	add(catLowerAcc, "ß"+span(0xE0, 0xF1)+"ăąćčďđęěğĺľłœŕśşšťźżžґﬁﬂ")
	add(catUpperCommon, "Þ"+span(0x391, 0x3A9)+"ΆΈΉΊΌΎΏΪΫ"+span(0x401, 0x42F))
	add(catLowerCommon, span(0x3B1, 0x3C6)+"άέήίΰ"+span(0x430, 0x45F))
	add(catBox, "─│┌┐┘├┤┬┼"+span(0x2550, 0x256C)+"▀▄█▌▐░▒▓")
	return m
})

// class is one position of a badness pattern.
type class func(r rune) bool

func cats(c int) class     { return func(r rune) bool { return mojibakeCats()[r]&c != 0 } }
func oneOf(s string) class { return func(r rune) bool { return strings.ContainsRune(s, r) } }
func either(a, b class) class {
	return func(r rune) bool { return a(r) || b(r) }
}

func isLowerASCII(r rune) bool { return 'a' <= r && r <= 'z' }

// isWordClass is Python's \w.
func isWordClass(r rune) bool { return isWordRune(r) || r == '_' }

// badnessPatterns returns ftfy's BADNESS_RE as sequences of classes.
var badnessPatterns = sync.OnceValue(func() [][]class {
	const (
		punct = catStart | catEnd
		mixed = catBad | catLowerAcc | catUpperAcc | catBox | punct | catCurrency | catNumeric
	)
	return [][]class{
		{cats(catC1)},
		{cats(mixed), cats(catBad)},
		{cats(catBad), cats(mixed &^ catBad)},
		{cats(catLowerAcc | catLowerCommon | catBox | catEnd | catCurrency | catNumeric), cats(catUpperAcc)},
		{cats(catBox | catEnd | catCurrency | catNumeric), cats(catLowerAcc)},
		{cats(catLowerAcc | catBox | catEnd), cats(catCurrency)},
		{isPySpace, cats(catUpperAcc), cats(catCurrency)},
		{cats(catUpperAcc | catBox | catEnd), cats(catNumeric)},
		{cats(catLowerAcc | catUpperAcc | catCurrency | catNumeric | catBox), cats(catEnd), cats(catStart)},
		{cats(catCurrency | catNumeric | catBox), cats(catStart)},
		{isLowerASCII, cats(catUpperAcc), cats(catStart | catCurrency)},
		{cats(catBox), cats(catKaomoji)},
		{cats(catLowerAcc | catUpperAcc | catCurrency | catNumeric | punct), cats(catBox)},
		{cats(catBox), cats(catEnd)},
		{cats(catLowerAcc | catUpperAcc), cats(catEnd), isWordClass},
		{oneOf("Œœ"), func(r rune) bool { return !isLowerASCII(r) }},
		{oneOf("ÂÃÎÐ"), either(oneOf("€Šš¢Ÿž\u00a0\u00ad®©°·»–—´"), cats(catEnd))},
		{oneOf("×"), oneOf("²³")},
		{oneOf("à"), oneOf("²µ¹¼½¾")},
		{oneOf("√"), oneOf("±∂†≠®™´≤≥¥µø")},
		{oneOf("≈"), oneOf("°¢")},
		{oneOf("‚"), oneOf("Ä"), oneOf("ìîïòôúùû†°¢π")},
		{oneOf("‚"), oneOf("âó"), oneOf("àä°ê")},
		{oneOf("в"), oneOf("Ђ")},
		{oneOf("ВГРС"), either(cats(catC1|catBad|punct|catCurrency), oneOf("°µ")), oneOf("ВГРС")},
		{oneOf("Ã"), oneOf("\u00a0¡")},
		{isLowerASCII, oneOf("Ã"), oneOf(" ")},
		{isLowerASCII, isPySpace, oneOf("Ã"), oneOf(" ")},
		{oneOf("β"), oneOf("€"), oneOf("™\u00a0Ά\u00ad®°")},
		{oneOf("ΒΓΞΟ"), either(cats(catC1|catBad|punct|catCurrency), oneOf("°")), oneOf("ΒΓΞΟ")},
	}
})

// isBad is ftfy's is_bad: does any badness pattern match somewhere in s?
func isBad(s string) bool {
	rs := []rune(s)
	for _, p := range badnessPatterns() {
	next:
		for i := 0; i+len(p) <= len(rs); i++ {
			for k, c := range p {
				if !c(rs[i+k]) {
					continue next
				}
			}
			return true
		}
	}
	return false
}

// fixEncoding is ftfy's fix_encoding, repeated until the text is stable.
func fixEncoding(s string) string {
	for range maxFixRounds {
		next := fixEncodingStep(s)
		if next == s {
			break
		}
		s = next
	}
	return s
}

// fixEncodingStep is one step of ftfy's fix_encoding: if the text looks
// broken, re-decode all of it as UTF-8 from Latin-1 or windows-1252 bytes;
// failing that, the runs of mojibake inside it; failing that, decode C1
// controls as windows-1252.
func fixEncodingStep(s string) string {
	if isASCII(s) || !isBad(s) {
		return s
	}
	for _, enc := range [...]func(rune) (byte, bool){latin1Byte, sloppy1252Byte} {
		if b, ok := encodeBytes(s, enc); ok && utf8.Valid(b) {
			return string(b)
		}
	}
	if t := decodeInconsistent(s); t != s {
		return t
	}
	return fixC1(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// latin1Byte encodes r in Latin-1.
func latin1Byte(r rune) (byte, bool) { return byte(r), r >= 0 && r <= 0xFF }

// sloppy1252Byte encodes r in ftfy's sloppy-windows-1252 (windows-1252 with
// the five undefined bytes standing for themselves).
func sloppy1252Byte(r rune) (byte, bool) {
	if r < 0x80 || r >= 0xA0 && r <= 0xFF {
		return byte(r), true
	}
	for b := byte(0x80); b <= 0x9F; b++ {
		if cp1252(b) == r {
			return b, true
		}
	}
	return 0, false
}

// encodeBytes encodes all of s with enc, or reports that it cannot.
func encodeBytes(s string, enc func(rune) (byte, bool)) ([]byte, bool) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		c, ok := enc(r)
		if !ok {
			return nil, false
		}
		b = append(b, c)
	}
	return b, true
}

// mojibakeByte encodes r as Latin-1 or, failing that, windows-1252.
func mojibakeByte(r rune) (byte, bool) {
	if b, ok := latin1Byte(r); ok {
		return b, true
	}
	return sloppy1252Byte(r)
}

// decodeInconsistent is ftfy's decode_inconsistent_utf8 for Latin-1 and
// windows-1252: each run of characters whose bytes look like UTF-8 sequences
// (a lead byte then continuation bytes) is fixed on its own if it is bad.
func decodeInconsistent(s string) string {
	rs := []rune(s)
	var b strings.Builder
	last := 0
	for i := 0; i < len(rs); {
		j := i
		for n := utf8SeqLen(rs[j:]); n > 0; n = utf8SeqLen(rs[j:]) {
			j += n
		}
		if j == i {
			i++
			continue
		}
		if sub := string(rs[i:j]); j-i < len(rs) && isBad(sub) {
			b.WriteString(string(rs[last:i]))
			b.WriteString(fixEncoding(sub))
			last = j
		}
		i = j
	}
	if last == 0 {
		return s
	}
	b.WriteString(string(rs[last:]))
	return b.String()
}

// utf8SeqLen returns how many runes at the start of rs encode (Latin-1 or
// windows-1252) to one UTF-8 lead byte and its continuation bytes, or 0.
func utf8SeqLen(rs []rune) int {
	if len(rs) == 0 {
		return 0
	}
	lead, ok := mojibakeByte(rs[0])
	if !ok {
		return 0
	}
	n := 0
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		n = 2
	case lead >= 0xE0 && lead <= 0xEF:
		n = 3
	case lead == 0xF0 || lead == 0xF3:
		n = 4
	default:
		return 0
	}
	if len(rs) < n {
		return 0
	}
	for _, r := range rs[1:n] {
		if c, ok := mojibakeByte(r); !ok || c < 0x80 || c > 0xBF {
			return 0
		}
	}
	return n
}
