package tokenizer

import (
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

func TestParseAttention(t *testing.T) {
	r, s := 1.1, 1/1.1 // the web UI's round and square multipliers
	for _, c := range []struct {
		in   string
		want []span
	}{
		// the examples of parse_prompt_attention's docstring
		{"normal text", []span{{"normal text", 1}}},
		{"an (important) word", []span{{"an ", 1}, {"important", 1.1}, {" word", 1}}},
		{"(unbalanced", []span{{"unbalanced", 1.1}}},
		{`\(literal\]`, []span{{"(literal]", 1}}},
		{"(unnecessary)(parens)", []span{{"unnecessaryparens", 1.1}}},
		{"a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", []span{
			{"a ", 1}, {"house", 1.3 * r * r}, {" ", r}, {"on", s * r}, {" a ", r},
			{"hill", 0.5 * r}, {", sun, ", r}, {"sky", r * r * r * r}, {".", r}}},
		// more, from the rules
		{"", []span{{"", 1}}},
		{"((x))", []span{{"x", r * r}}},
		{"[[x]]", []span{{"x", s * s}}},
		{"(x: 1.5 ) y", []span{{"x", 1.5}, {" y", 1}}},
		{"(x:-1)", []span{{"x", -1}}},
		{"x:1.2) y] z)", []span{{"x:1.2) y] z)", 1}}}, // nothing open: literal
		{`a \\ b \ c`, []span{{`a \ b  c`, 1}}},       // a lone backslash is dropped
		{"a: b", []span{{"a: b", 1}}},
		{"a [b (c] d)", []span{{"a ", 1}, {"b ", s}, {"c", s * r}, {" d", r}}},
		{"a BREAK b", []span{{"a", 1}, {"BREAK", -1}, {"b", 1}}},
		{"aBREAK b BREAKs", []span{{"aBREAK b BREAKs", 1}}},
		{"(a BREAK b)", []span{{"a", r}, {"BREAK", -r}, {"b", r}}}, // weighted: no longer a break
	} {
		got, err := parseAttention(c.in)
		if err != nil {
			t.Errorf("parseAttention(%q): %v", c.in, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("parseAttention(%q)\n got %v\nwant %v", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"(x:1.2.3)", "(x:.)", "(x:+.)"} {
		if _, err := parseAttention(bad); err == nil || !strings.Contains(err.Error(), "not a number") {
			t.Errorf("parseAttention(%q) error = %v", bad, err)
		}
	}
	if w, err := parseWeight("١.٥"); err != nil || w != 1.5 { // Arabic-Indic digits, as Python's float
		t.Errorf("parseWeight(١.٥) = %v, %v", w, err)
	}
}

// seq builds the expected 77-id layout and weights of one chunk.
func seq(tok *Tokenizer, ids []int, ws []float32) Chunk {
	var c Chunk
	c.IDs[0] = tok.BOS()
	for i := 1; i < ContextLen; i++ {
		c.IDs[i], c.Weights[i] = tok.EOS(), 1
	}
	c.Weights[0] = 1
	copy(c.IDs[1:], ids)
	copy(c.Weights[1:], ws)
	return c
}

// rep repeats ids[0] n times (weights 1).
func rep(id, n int) ([]int, []float32) {
	ids := make([]int, n)
	ws := make([]float32, n)
	for i := range ids {
		ids[i], ws[i] = id, 1
	}
	return ids, ws
}

func TestPromptPlainEqualsIDs77(t *testing.T) {
	var doc tokenizerCases
	golden.JSON(t, "tokenizer_cases.json", &doc)
	tok := goldenBPE(t, false)
	for _, c := range doc.Cases {
		ch, err := tok.Prompt(c.Text, Options{})
		if err != nil || len(ch) != 1 {
			t.Fatalf("%s: Prompt = %d chunks, %v", c.Name, len(ch), err)
		}
		if !slices.Equal(ch[0].IDs[:], c.IDs77) {
			t.Errorf("%s: Prompt ids %v, want %v", c.Name, ch[0].IDs, c.IDs77)
		}
		for i, w := range ch[0].Weights {
			if w != 1 {
				t.Fatalf("%s: weight %d = %v without emphasis", c.Name, i, w)
			}
		}
	}
}

func TestPrompt(t *testing.T) {
	tok := goldenBPE(t, false)
	id := func(w string) int {
		ids, ok := tok.Lookup(w)
		if !ok || len(ids) != 1 {
			t.Fatalf("%q is not one token: %v", w, ids)
		}
		return ids[0]
	}
	a, b, comma, cat, on, mat := id("a"), id("b"), id(","), id("cat"), id("on"), id("mat")
	words := func(w string, n int) string { return strings.Repeat(w+" ", n) }
	r := float32(1.1)
	s := float32(1 / 1.1)
	both := Options{Emphasis: true, Chunks: true}

	a75, w75 := rep(a, 75)
	a60, w60 := rep(a, 60)
	b15, _ := rep(b, 15)
	a50, w50 := rep(a, 50)
	b24, wb24 := rep(b, 24)
	b16, wb16 := rep(b, 16)
	a76, w76 := rep(a, 76)
	for _, c := range []struct {
		name string
		text string
		opt  Options
		want []Chunk
	}{
		{"emphasis", "a (cat) on a [mat]", Options{Emphasis: true}, []Chunk{
			seq(tok, []int{a, cat, on, a, mat}, []float32{1, r, 1, 1, s})}},
		{"emphasis off keeps brackets", "(cat)", Options{}, []Chunk{
			seq(tok, tok.Encode("(cat)"), []float32{1, 1, 1})}},
		{"truncate with weights", "(" + words("a", 80) + ")", Options{Emphasis: true}, []Chunk{
			seq(tok, a75, slices.Repeat([]float32{r}, 75))}},
		{"empty, chunked", "", both, []Chunk{seq(tok, nil, nil)}},
		{"exactly 75", words("a", 75), both, []Chunk{seq(tok, a75, w75)}},
		{"76 spills one", words("a", 76), Options{Chunks: true}, []Chunk{
			seq(tok, a76[:75], w76[:75]), seq(tok, []int{a}, []float32{1})}},
		// the 76th token meets a full chunk whose comma (index 60) is 15 back:
		// the 14 tokens after the comma move on
		{"comma backtrack", words("a", 60) + ", " + words("b", 30), Options{Chunks: true}, []Chunk{
			seq(tok, append(a60, comma), append(w60, 1)),
			seq(tok, slices.Repeat([]int{b}, 30), slices.Repeat([]float32{1}, 30))}},
		// comma 25 back: too far, plain cut at 75
		{"comma too far", words("a", 50) + ", " + words("b", 40), Options{Chunks: true}, []Chunk{
			seq(tok, slices.Concat(a50, []int{comma}, b24), slices.Concat(w50, []float32{1}, wb24)),
			seq(tok, b16, wb16)}},
		// a comma arriving at a full chunk starts the next one
		{"comma at 76", words("a", 75) + ", b", Options{Chunks: true}, []Chunk{
			seq(tok, a75, w75), seq(tok, []int{comma, b}, []float32{1, 1})}},
		{"moved tokens keep weights", words("a", 60) + ", (" + words("b", 15) + ")", both, []Chunk{
			seq(tok, append(a60, comma), append(w60, 1)),
			seq(tok, b15, slices.Repeat([]float32{r}, 15))}},
		{"break", "a BREAK b", both, []Chunk{
			seq(tok, []int{a}, []float32{1}), seq(tok, []int{b}, []float32{1})}},
		{"break first", "BREAK a", both, []Chunk{seq(tok, nil, nil), seq(tok, []int{a}, []float32{1})}},
		{"break without emphasis is a word", "a BREAK b", Options{Chunks: true}, []Chunk{
			seq(tok, tok.Encode("a BREAK b"), slices.Repeat([]float32{1}, len(tok.Encode("a BREAK b"))))}},
	} {
		got, err := tok.Prompt(c.text, c.opt)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %d chunks, want %d", c.name, len(got), len(c.want))
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: chunk %d\n got %v\n     %v\nwant %v\n     %v", c.name, i,
					got[i].IDs, got[i].Weights, c.want[i].IDs, c.want[i].Weights)
			}
		}
	}
	if _, err := tok.Prompt("(x:1.2.3)", both); err == nil {
		t.Error("bad weight: no error")
	}
}
