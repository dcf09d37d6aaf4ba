package tokenizer

import (
	"html"
	"math/big"
	"strings"
	"unicode"
	"unicode/utf8"
)

// clean is SimpleTokenizer.encode's text preparation:
// whitespace_clean(basic_clean(text)).lower(), where basic_clean is
// ftfy.fix_text, html.unescape twice (skipped with SkipHTMLUnescape), strip.
// Invalid UTF-8 bytes (which a Python str cannot hold) become U+FFFD first.
func (t *Tokenizer) clean(text string) string {
	s := text
	if !utf8.ValidString(s) {
		s = replaceInvalid(text)
	}
	s = fixText(s)
	if !t.SkipHTMLUnescape {
		s = pyUnescape(pyUnescape(s))
	}
	s = collapseSpace(s)
	return pyLower(s)
}

// replaceInvalid replaces each invalid UTF-8 byte with U+FFFD.
func replaceInvalid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// isPySpace is Python's str.isspace (what re's \s and strip() use): Unicode
// White_Space plus U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || r >= 0x1C && r <= 0x1F
}

// collapseSpace is re.sub(r'\s+', ' ', s).strip().
func collapseSpace(s string) string {
	return strings.Join(strings.FieldsFunc(s, isPySpace), " ")
}

// pyLower is Python's str.lower(): Unicode full lower-casing, so U+0130 'İ'
// becomes "i\u0307" and a capital sigma at the end of a word becomes 'ς'.
func pyLower(s string) string {
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch {
		case r < utf8.RuneSelf:
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
		case r == 0x130:
			b.WriteString("i\u0307")
		case r == 0x3A3 && finalSigma(rs, i):
			b.WriteRune(0x3C2)
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is Unicode's Final_Sigma condition at rs[i]: a cased letter
// before it and none after it, skipping case-ignorable characters.
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && isCaseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !isCased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && isCaseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !isCased(rs[j])
}

// isCased is Unicode's Cased property.
func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.In(r, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// isCaseIgnorable is Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk,
// and the Word_Break MidLetter, MidNumLet and Single_Quote characters.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// pyUnescape is Python's html.unescape: numeric references as Python
// resolves them (C1 numbers as windows-1252, invalid code points removed),
// named ones through the WHATWG table, longest legacy prefix first.
func pyUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '&' {
			j := strings.IndexByte(s[i:], '&')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(s[i : i+j])
			i += j
			continue
		}
		rep, n := unescapeRef(s[i:])
		b.WriteString(rep)
		i += n
	}
	return b.String()
}

// unescapeRef resolves the character reference at the start of s (s[0] is
// '&') and returns its replacement and the bytes it consumed.
func unescapeRef(s string) (string, int) {
	if len(s) > 1 && s[1] == '#' {
		digits, base := s[2:], 10
		if len(digits) > 0 && (digits[0] == 'x' || digits[0] == 'X') {
			digits, base = digits[1:], 16
		}
		n := runWhile(digits, func(r rune) bool {
			return r < utf8.RuneSelf && (base == 10 && isASCIIDigit(r) || base == 16 && isHexDigit(r))
		})
		if n == 0 {
			return "&", 1
		}
		consumed := len(s) - len(digits) + n
		if consumed < len(s) && s[consumed] == ';' {
			consumed++
		}
		v, _ := new(big.Int).SetString(digits[:n], base)
		return numericRef(v), consumed
	}
	// [^\t\n\f <&#;]{1,32};?
	n, count := 1, 0
	for n < len(s) && count < 32 {
		r, size := utf8.DecodeRuneInString(s[n:])
		if strings.ContainsRune("\t\n\f <&#;", r) {
			break
		}
		n += size
		count++
	}
	if count == 0 {
		return "&", 1
	}
	if n < len(s) && s[n] == ';' {
		n++
	}
	return html.UnescapeString(s[:n]), n
}

// numericRef is Python's replacement for the numeric reference &#v;.
func numericRef(v *big.Int) string {
	if !v.IsInt64() || v.Int64() > unicode.MaxRune {
		return "\uFFFD"
	}
	c := rune(v.Int64())
	switch {
	case c == 0:
		return "\uFFFD"
	case c == '\r':
		return "\r"
	case c >= 0x80 && c <= 0x9F:
		return string(cp1252(byte(c)))
	case c >= 0xD800 && c <= 0xDFFF:
		return "\uFFFD"
	case c >= 0x1 && c <= 0x8, c == 0xB, c >= 0xE && c <= 0x1F, c == 0x7F,
		c >= 0xFDD0 && c <= 0xFDEF, c&0xFFFE == 0xFFFE:
		return ""
	}
	return string(c)
}

func isASCIIDigit(r rune) bool { return '0' <= r && r <= '9' }

func isHexDigit(r rune) bool {
	return isASCIIDigit(r) || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F'
}

// cp1252 maps a byte 0x80..0x9F as Python's "sloppy" windows-1252 does: the
// five undefined bytes stand for the C1 control of the same number.
func cp1252(b byte) rune {
	return [32]rune{
		0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
		0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
		0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
		0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
	}[b-0x80]
}
