package tokenizer

import (
	"strings"
	"testing"
)

// Expected values below follow from the rules quoted in each function's
// doc (Python's str.lower, html.unescape and unicodedata.normalize, ftfy's
// fixes); the Python ones were checked against Python 3.11.

func TestPyLower(t *testing.T) {
	for _, c := range [][2]string{
		{"A Photograph", "a photograph"},
		{"İstanbul", "i\u0307stanbul"}, // full mapping: two code points
		{"ΟΔΟΣ", "οδος"},               // final sigma
		{"ΣΑ", "σα"},                   // not final
		{"Σ", "σ"},                     // no cased letter before
		{"ΑΣ.", "ας."},                 // '.' is case-ignorable, then the end
		{"ΑΣ'Α", "ασ'α"},               // a cased letter after the ignorable
		{"ΑΣ\u0301", "ας\u0301"},       // a mark after it
		{"ẞ", "ß"},
		{"ＡＢＣ", "ａｂｃ"},
	} {
		if got := pyLower(c[0]); got != c[1] {
			t.Errorf("pyLower(%q) = %q, want %q", c[0], got, c[1])
		}
	}
}

func TestCollapseSpace(t *testing.T) {
	got := collapseSpace(" a \t\n b\u00a0c\u3000d \x1c\u2028")
	if got != "a b c d" {
		t.Errorf("collapseSpace = %q", got)
	}
}

func TestPyUnescape(t *testing.T) {
	for _, c := range [][2]string{
		{"&amp;", "&"},
		{"&amp", "&"},     // legacy name without ';'
		{"&ampx;", "&x;"}, // longest legacy prefix
		{"&#65;&#x42;&#X43", "ABC"},
		{"&#150;", "–"}, // C1 numbers are windows-1252
		{"&#0;", "\uFFFD"},
		{"&#1;", ""}, // invalid code points vanish
		{"&#x1FFFF;", ""},
		{"&#13;", "\r"},
		{"&#xD800;", "\uFFFD"},
		{"&#99999999999999999999;", "\uFFFD"},
		{"&#;", "&#;"},
		{"&notit;", "¬it;"},
		{"&copy", "©"},
		{"&nosuch;", "&nosuch;"},
		{"a & b", "a & b"},
	} {
		if got := pyUnescape(c[0]); got != c[1] {
			t.Errorf("pyUnescape(%q) = %q, want %q", c[0], got, c[1])
		}
	}
}

// NFC ends each round of fixText (ftfy's final unicodedata.normalize).
func TestFixTextNFC(t *testing.T) {
	for _, c := range [][2]string{
		{"cafe\u0301 cre\u0300me", "café crème"},
		{"e\u0302\u0323", "\u1ec7"}, // marks reordered, then composed twice
		{"e\u0323\u0302", "\u1ec7"},
		{"\u00ea\u0323", "\u1ec7"},   // a precomposed letter takes a mark that sorts first
		{"a\u0301\u0301", "á\u0301"}, // the second acute is blocked
		{"\u1100\u1161\u11a8", "\uac01"},
		{"\u212b", "Å"},            // singleton
		{"\u0958", "\u0915\u093c"}, // composition exclusion stays decomposed
		{"\u30ab\u3099", "\u30ac"},
		{"plain ascii", "plain ascii"},
	} {
		if got := fixText(c[0]); got != c[1] {
			t.Errorf("fixText(%q) = %q, want %q", c[0], got, c[1])
		}
	}
}

func TestWidthForm(t *testing.T) {
	for r := rune(0xFF01); r <= 0xFF5E; r++ { // full-width ASCII
		if got, ok := widthForm(r); !ok || got != string(r-0xFEE0) {
			t.Errorf("widthForm(%U) = %q, %v; want %q", r, got, ok, string(r-0xFEE0))
		}
	}
	for _, c := range []struct {
		r    rune
		want string
		ok   bool
	}{
		{0x3000, " ", true}, {0xFF76, "カ", true}, {0xFF9E, "\u3099", true}, {0xFFE0, "¢", true},
		{0xFFE8, "│", true}, {0xFFE7, "", false}, {0xFF00, "", false}, {0xFFF0, "", false}, {'A', "", false},
	} {
		if got, ok := widthForm(c.r); got != c.want || ok != c.ok {
			t.Errorf("widthForm(%U) = %q, %v; want %q, %v", c.r, got, ok, c.want, c.ok)
		}
	}
}

func TestFixText(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"nfc", "cafe\u0301", "café"},
		{"curly quotes", "\u201chi\u201d \u2018x\u2019 \u02bc", "\"hi\" 'x' '"},
		{"ligatures", "ﬁﬂ ĳ ǆ ŉ", "fifl ij dž 'n"}, // ʼ of ŉ is then uncurled
		{"width", "ＡＢＣ\u3000ｘ ｶﾞ", "ABC x ガ"},      // half-width ka + voiced mark compose
		{"mojibake", "sÃ©ance", "séance"},
		{"mojibake at end", "cafÃ©", "café"},
		{"mojibake 1252", "itâ€™s", "it's"},
		{"mojibake emoji", "ðŸ˜€", "😀"},
		{"mojibake inside good text", "café sÃ©ance", "café séance"},
		{"valid text left alone", "not such a fan of Charlotte Brontë…”", "not such a fan of Charlotte Brontë…\""},
		{"c1 controls", "a\u0085b x\u0093y\u0094", "a…b x\"y\""},
		{"entity", "salt &amp; pepper &lt;3", "salt & pepper <3"},
		{"nested entities", "&amp;amp;amp;", "&"},
		{"entity with <", "1 < 2 &amp; 3", "1 < 2 &amp; 3"},
		{"< sticks for later lines", "x &amp; y\n<b>\n&amp;", "x & y\n<b>\n&amp;"},
		{"upper-case entity", "&EACUTE; &AMP;", "É &"},
		{"numeric entity", "&#65;&#x42; &#59;", "AB &#59;"}, // ftfy keeps a ';' result
		{"control chars", "a\x00b\x07c\u200bd\ufeffe\u2060f\u206a", "abc\u200bde\u2060f"},
		{"terminal escapes", "\x1b[36;44mblue\x1b[0m", "blue"},
		{"line breaks", "a\r\nb\rc\u2028d", "a\nb\nc\nd"},
	} {
		if got := fixText(c.in); got != c.want {
			t.Errorf("%s: fixText(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

func TestIsBad(t *testing.T) {
	for _, c := range []struct {
		s   string
		bad bool
	}{
		{"sÃ©ance", true},
		{"â€œquotedâ€", true},
		{"x\u0081y", true},
		{"café crème brûlée", false},
		{"Brontë…”", false},
		{"Naïve Résumé Ångström Zürich", false},
		{"日本語のテキスト", false},
	} {
		if got := isBad(c.s); got != c.bad {
			t.Errorf("isBad(%q) = %v, want %v", c.s, got, c.bad)
		}
	}
}

func TestClean(t *testing.T) {
	tok := &Tokenizer{}
	for _, c := range [][2]string{
		{"  A   Cat \t\n ", "a cat"},
		{"a &amp;amp;amp;amp; b", "a & b"}, // ftfy's repeated unescape, then two more
		{"1 < 2 &amp;amp; 3", "1 < 2 & 3"}, // html.unescape twice after ftfy skipped it
		{"a\xffb", "a\ufffdb"},             // invalid UTF-8
		{"ΟΔΟΣ", "οδος"},
	} {
		if got := tok.clean(c[0]); got != c[1] {
			t.Errorf("clean(%q) = %q, want %q", c[0], got, c[1])
		}
	}
	tok.SkipHTMLUnescape = true
	if got := tok.clean("1 < 2 &amp;amp; 3"); got != "1 < 2 &amp;amp; 3" {
		t.Errorf("clean without html.unescape = %q", got)
	}
}

func TestSplitRegex(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // pieces joined by spaces
	}{
		{"it's a dog's life", "it 's a dog 's life"},
		{"'single'", "'s ingle '"},
		{"don'ſ", "don 'ſ"}, // case-insensitive: ſ folds to s
		{"a<|startoftext|>b<|endoftext|>", "a <|startoftext|> b <|endoftext|>"},
		{"!<|endoftext|>", "!<| endoftext |>"},
		{"1234 ½²", "1 2 3 4 ½ ²"},
		{"...!!!???---***", "...!!!???---***"},
		{"mixed👍emoji", "mixed 👍 emoji"},
		{"i\u0307stanbul", "i \u0307 stanbul"},
		{"e-mail@x.com", "e - mail @ x . com"},
	} {
		var got []string
		splitRegex(c.in, func(p string) { got = append(got, p) })
		if strings.Join(got, " ") != c.want {
			t.Errorf("splitRegex(%q) = %q, want %q", c.in, strings.Join(got, " "), c.want)
		}
	}
}
