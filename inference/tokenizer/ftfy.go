package tokenizer

import (
	"html"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// This file is the part of ftfy.fix_text (python-ftfy 6.3.1, default
// settings) that the tokenizer needs. Per line, until nothing changes:
// unescape_html (skipped for the rest of the text once a line holds '<'),
// fix_encoding, fix_c1_controls, fix_latin_ligatures, fix_character_width,
// uncurl_quotes, fix_line_breaks, remove_terminal_escapes,
// remove_control_chars, then NFC.
//
// Limits, all outside what prompts normally hold: fix_encoding only undoes
// UTF-8 read as Latin-1 or windows-1252 (not windows-1250/1251/1253/1254/
// 1257, ISO-8859-2, MacRoman or cp437 mojibake), its badness test is the
// Latin-1/windows-1252 part of ftfy's, and restore_byte_a0,
// replace_lossy_sequences and CESU-8 decoding are not done; upper-case entity
// names (&EACUTE;) are upper-cased with simple case mapping. Unicode data
// (NFC, NFKC for the width forms, letter and case properties) come from Go
// (golang.org/x/text/unicode/norm and unicode, Unicode 15.0) where the
// reference's Python 3.11 has Unicode 14.0: they agree on every character
// Unicode 14 assigns.

// maxFixRounds bounds ftfy's "repeat until unchanged" loops.
const maxFixRounds = 16

// fixText applies the ftfy subset line by line, as ftfy.fix_text does.
func fixText(s string) string {
	if isASCIIPlain(s) {
		return s // nothing below changes printable ASCII without '&' or ESC
	}
	var b strings.Builder
	unescape := true
	for len(s) > 0 {
		n := strings.IndexByte(s, '\n') + 1
		if n == 0 {
			n = len(s)
		}
		seg := s[:n]
		if strings.Contains(seg, "<") {
			unescape = false
		}
		b.WriteString(fixSegment(seg, unescape))
		s = s[n:]
	}
	return b.String()
}

// isASCIIPlain reports text of ASCII letters, digits, space, tab, newline
// and punctuation, without '&' or control characters.
func isASCIIPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x7F || c == '&' || c < ' ' && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

// fixSegment is ftfy's fix_and_explain on one line.
func fixSegment(s string, unescape bool) string {
	for range maxFixRounds {
		orig := s
		if unescape {
			s = ftfyUnescape(s)
		}
		s = fixEncoding(s)
		s = fixC1(s)
		s = mapRunes(s, ligature)
		s = mapRunes(s, widthForm)
		s = mapRunes(s, uncurl)
		s = fixLineBreaks(s)
		s = removeTerminalEscapes(s)
		s = mapRunes(s, dropControl)
		s = norm.NFC.String(s)
		if s == orig {
			break
		}
	}
	return s
}

// mapRunes replaces each rune r by f(r) when f reports a change.
func mapRunes(s string, f func(rune) (string, bool)) string {
	var b strings.Builder
	last := 0
	for i, r := range s {
		if rep, ok := f(r); ok {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:i])
			b.WriteString(rep)
			last = i + utf8.RuneLen(r)
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// ftfyUnescape is ftfy's unescape_html: every &#?[0-9A-Za-z]{1,24}; that is
// an HTML5 entity with its semicolon (or one written in capitals), or a
// numeric reference that html.unescape resolves completely.
func ftfyUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '&' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i + 1
		if j < len(s) && s[j] == '#' {
			j++
		}
		k := j + runWhile(s[j:], func(r rune) bool { return r < utf8.RuneSelf && (isASCIIDigit(r) || isASCIILetter(r)) })
		if k == j || k-j > 24 || k >= len(s) || s[k] != ';' {
			b.WriteByte('&')
			i++
			continue
		}
		b.WriteString(ftfyEntity(s[i : k+1]))
		i = k + 1
	}
	return b.String()
}

func isASCIILetter(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' }

// ftfyEntity resolves one "&...;" match of ftfyUnescape, or returns it.
func ftfyEntity(m string) string {
	if m[1] == '#' {
		if u := pyUnescape(m); !strings.Contains(u, ";") {
			return u
		}
		return m
	}
	if u, ok := exactEntity(m); ok {
		return u
	}
	name := m[1 : len(m)-1]
	if upper := strings.ToUpper(name); upper == name && html.UnescapeString(m) == m {
		if u, ok := exactEntity("&" + strings.ToLower(name) + ";"); ok {
			return strings.ToUpper(u)
		}
	}
	return m
}

// exactEntity resolves "&name;" only when name (with its ';') is an entity;
// html.UnescapeString would also resolve a legacy prefix ("&ampx;" -> "&x;"),
// which leaves the name's last character and ';' in place.
func exactEntity(m string) (string, bool) {
	u := html.UnescapeString(m)
	if u == m || strings.HasSuffix(u, m[len(m)-2:]) {
		return "", false
	}
	return u, true
}

// fixC1 is ftfy's fix_c1_controls: U+0080..U+009F decoded as windows-1252.
func fixC1(s string) string {
	return mapRunes(s, func(r rune) (string, bool) {
		if r >= 0x80 && r <= 0x9F {
			return string(cp1252(byte(r))), cp1252(byte(r)) != r
		}
		return "", false
	})
}

// ligature is ftfy's fix_latin_ligatures.
func ligature(r rune) (string, bool) {
	switch r {
	case 'Ĳ':
		return "IJ", true
	case 'ĳ':
		return "ij", true
	case 'ŉ':
		return "ʼn", true
	case 'Ǳ':
		return "DZ", true
	case 'ǲ':
		return "Dz", true
	case 'ǳ':
		return "dz", true
	case 'Ǆ':
		return "DŽ", true
	case 'ǅ':
		return "Dž", true
	case 'ǆ':
		return "dž", true
	case 'Ǉ':
		return "LJ", true
	case 'ǈ':
		return "Lj", true
	case 'ǉ':
		return "lj", true
	case 'Ǌ':
		return "NJ", true
	case 'ǋ':
		return "Nj", true
	case 'ǌ':
		return "nj", true
	case 'ﬀ':
		return "ff", true
	case 'ﬁ':
		return "fi", true
	case 'ﬂ':
		return "fl", true
	case 'ﬃ':
		return "ffi", true
	case 'ﬄ':
		return "ffl", true
	case 'ﬅ':
		return "ſt", true
	case 'ﬆ':
		return "st", true
	}
	return "", false
}

// widthForm is ftfy's fix_character_width: full-width and half-width forms
// (U+FF01..U+FFEF) to their NFKC form, U+3000 to a space.
func widthForm(r rune) (string, bool) {
	switch {
	case r == 0x3000:
		return " ", true
	case r < 0xFF01 || r > 0xFFEF:
		return "", false
	}
	s := string(r)
	if rep := norm.NFKC.String(s); rep != s {
		return rep, true
	}
	return "", false
}

// uncurl is ftfy's uncurl_quotes.
func uncurl(r rune) (string, bool) {
	switch {
	case r == 0x2BC || r >= 0x2018 && r <= 0x201B:
		return "'", true
	case r >= 0x201C && r <= 0x201F:
		return "\"", true
	}
	return "", false
}

// fixLineBreaks is ftfy's fix_line_breaks: CRLF, CR, U+2028, U+2029 and
// U+0085 become "\n".
func fixLineBreaks(s string) string {
	if !strings.ContainsAny(s, "\r\u2028\u2029\u0085") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.NewReplacer("\r", "\n", "\u2028", "\n", "\u2029", "\n", "\u0085", "\n").Replace(s)
}

// removeTerminalEscapes is ftfy's remove_terminal_escapes: drops
// ESC '[' [0-9;]* [A-Za-z].
func removeTerminalEscapes(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "\x1b[") {
			j := i + 2 + runWhile(s[i+2:], func(r rune) bool { return isASCIIDigit(r) || r == ';' })
			if j < len(s) && isASCIILetter(rune(s[j])) {
				i = j + 1
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// dropControl is ftfy's remove_control_chars.
func dropControl(r rune) (string, bool) {
	switch {
	case r <= 0x08, r == 0x0B, r >= 0x0E && r <= 0x1F, r == 0x7F,
		r >= 0x206A && r <= 0x206F, r == 0xFEFF, r >= 0xFFF9 && r <= 0xFFFC:
		return "", true
	}
	return "", false
}
