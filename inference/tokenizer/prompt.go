package tokenizer

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Options selects the AUTOMATIC1111 web UI behaviours of Prompt. The zero
// value is plain SD1.5: no emphasis syntax, truncation to 75 tokens.
type Options struct {
	// Emphasis parses the web UI's attention syntax (parse_prompt_attention):
	// "(word)" ×1.1, "((word))" ×1.21, "[word]" ÷1.1, "(word:1.3)" ×1.3,
	// escapes \( \) \[ \] \\, and "BREAK" (upper case, a word of its own) to
	// start a new chunk (dropped when Chunks is off). Unclosed brackets apply
	// up to the end of the prompt; an unmatched ")" or "]" is literal text.
	Emphasis bool
	// Chunks splits a prompt longer than 75 tokens into several sequences of
	// 77 ids, to be encoded separately and concatenated by the caller. When
	// a chunk fills up and a comma lies within its last 20 tokens, the tokens
	// after that comma move to the next chunk (the web UI's
	// comma_padding_backtrack = 20). False: truncate to 75 tokens, as SD1.5.
	Chunks bool
	// Words maps words added for this call only (Perfusion placeholders
	// such as "<tubby>") to their token ids. They are matched as AddToken's
	// words are (cleaned like the prompt, so case-insensitively, and not
	// where glued to letters or digits) and shadow them; the tokenizer
	// itself is not changed, so concurrent calls may use other words.
	Words map[string]int
}

// Chunk is one CLIP sequence: BOS, up to 75 content ids, EOS, EOS padding;
// Weights are the emphasis multipliers aligned with IDs (1 on BOS, EOS and
// padding). The web UI applies them to the encoder's output, z *= w, then
// rescales z to its original mean.
type Chunk struct {
	IDs     [ContextLen]int
	Weights [ContextLen]float32
}

// commaBacktrack is the web UI's default comma_padding_backtrack.
const commaBacktrack = 20

// span is one parsed piece of a prompt and its weight.
type span struct {
	text   string
	weight float64
}

// isBreak reports the BREAK marker of parseAttention (text "BREAK", -1).
func (s span) isBreak() bool { return s.text == "BREAK" && s.weight == -1 }

// Prompt tokenizes text with the selected web UI behaviours; it returns at
// least one chunk. The only error is an emphasis weight that is not a number
// ("(x:1.2.3)"), which the web UI also rejects.
func (t *Tokenizer) Prompt(text string, opt Options) ([]Chunk, error) {
	extra, err := t.callWords(opt.Words)
	if err != nil {
		return nil, err
	}
	spans := []span{{text, 1}}
	if opt.Emphasis {
		if spans, err = parseAttention(text); err != nil {
			return nil, err
		}
	}
	if !opt.Chunks {
		var ids []int
		var ws []float32
		for _, s := range spans {
			if s.isBreak() {
				continue
			}
			for _, id := range t.encode(s.text, extra) {
				ids = append(ids, id)
				ws = append(ws, float32(s.weight))
			}
		}
		return []Chunk{t.chunk(ids, ws)}, nil
	}
	return t.chunked(spans, extra), nil
}

// callWords are the per-call words of Options.Words, cleaned.
type callWords struct {
	words []string       // longest first
	ids   map[string]int // cleaned word -> id
}

// callWords cleans the per-call words (nil if there are none).
func (t *Tokenizer) callWords(m map[string]int) (*callWords, error) {
	if len(m) == 0 {
		return nil, nil
	}
	cw := &callWords{ids: make(map[string]int, len(m))}
	for s, id := range m {
		w, err := t.addable(s)
		if err != nil {
			return nil, err
		}
		if id < 0 {
			return nil, fmt.Errorf("tokenizer: word %q: negative id %d", s, id)
		}
		if old, dup := cw.ids[w]; dup && old != id {
			return nil, fmt.Errorf("tokenizer: words %q clean to the same %q with ids %d and %d", s, w, old, id)
		}
		if _, dup := cw.ids[w]; !dup {
			cw.words = append(cw.words, w)
		}
		cw.ids[w] = id
	}
	return cw, nil
}

// merge returns the per-call words and the added words (shadowed ones
// dropped), longest first.
func (c *callWords) merge(added []string) []string {
	ws := append([]string(nil), c.words...)
	for _, w := range added {
		if _, ok := c.ids[w]; !ok {
			ws = append(ws, w)
		}
	}
	sort.SliceStable(ws, func(i, j int) bool {
		if len(ws[i]) != len(ws[j]) {
			return len(ws[i]) > len(ws[j])
		}
		return ws[i] < ws[j]
	})
	return ws
}

// chunk lays out up to ChunkTokens ids and weights as one sequence.
func (t *Tokenizer) chunk(ids []int, ws []float32) Chunk {
	var c Chunk
	copy(c.IDs[:], t.layout(ids))
	for i := range c.Weights {
		c.Weights[i] = 1
	}
	copy(c.Weights[1:ChunkTokens+1], ws[:min(len(ws), ChunkTokens)])
	return c
}

// chunked is the web UI's tokenize_line (sd_hijack_clip.py).
func (t *Tokenizer) chunked(spans []span, extra *callWords) []Chunk {
	var chunks []Chunk
	var ids []int
	var ws []float32
	lastComma := -1
	next := func() {
		chunks = append(chunks, t.chunk(ids, ws))
		ids, ws, lastComma = nil, nil, -1
	}
	for _, s := range spans {
		if s.isBreak() {
			next()
			continue
		}
		for _, id := range t.encode(s.text, extra) {
			if id == t.comma {
				lastComma = len(ids)
			} else if len(ids) == ChunkTokens && lastComma != -1 && len(ids)-lastComma <= commaBacktrack {
				cut := lastComma + 1
				movedIDs := append([]int(nil), ids[cut:]...)
				movedWs := append([]float32(nil), ws[cut:]...)
				ids, ws = ids[:cut], ws[:cut]
				next()
				ids, ws = movedIDs, movedWs
			}
			if len(ids) == ChunkTokens {
				next()
			}
			ids = append(ids, id)
			ws = append(ws, float32(s.weight))
		}
	}
	if len(ids) > 0 || len(chunks) == 0 {
		next()
	}
	return chunks
}

// parseAttention is the web UI's parse_prompt_attention (prompt_parser.py):
// it scans the prompt with the alternatives of its re_attention, in order,
//
//	\( \) \[ \] \\ \ ( [ :\s*([+-]?[.\d]+)\s*\) ) ] [^\\()\[\]:]+ :
//
// multiplies the weights of the text since the matching bracket, and merges
// neighbouring pieces of equal weight. Weights are float64 products, as in
// Python.
func parseAttention(text string) ([]span, error) {
	var res []span
	var round, square []int
	multiply := func(from int, m float64) {
		for p := from; p < len(res); p++ {
			res[p].weight *= m
		}
	}
	for i := 0; i < len(text); {
		tok, weight := attentionToken(text[i:])
		i += len(tok)
		switch {
		case tok[0] == '\\':
			res = append(res, span{tok[1:], 1})
		case tok == "(":
			round = append(round, len(res))
		case tok == "[":
			square = append(square, len(res))
		case weight != "" && len(round) > 0:
			w, err := parseWeight(weight)
			if err != nil {
				return nil, err
			}
			multiply(round[len(round)-1], w)
			round = round[:len(round)-1]
		case tok == ")" && len(round) > 0:
			multiply(round[len(round)-1], 1.1)
			round = round[:len(round)-1]
		case tok == "]" && len(square) > 0:
			multiply(square[len(square)-1], 1/1.1)
			square = square[:len(square)-1]
		default:
			for k, part := range splitBreak(tok) {
				if k > 0 {
					res = append(res, span{"BREAK", -1})
				}
				res = append(res, span{part, 1})
			}
		}
	}
	for _, p := range round {
		multiply(p, 1.1)
	}
	for _, p := range square {
		multiply(p, 1/1.1)
	}
	if len(res) == 0 {
		res = []span{{"", 1}}
	}
	merged := res[:1]
	for _, s := range res[1:] {
		if last := &merged[len(merged)-1]; last.weight == s.weight {
			last.text += s.text
		} else {
			merged = append(merged, s)
		}
	}
	return merged, nil
}

// attentionToken returns the re_attention match at the start of s (never
// empty) and, for ":<number>)", the number's text.
func attentionToken(s string) (tok, weight string) {
	if s[0] == '\\' {
		if len(s) > 1 && strings.IndexByte(`()[]\`, s[1]) >= 0 {
			return s[:2], ""
		}
		return s[:1], ""
	}
	switch s[0] {
	case '(', '[', ')', ']':
		return s[:1], ""
	case ':':
		i := 1 + runWhile(s[1:], isPySpace)
		j := i
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j + runWhile(s[j:], func(r rune) bool { return r == '.' || unicode.IsDigit(r) })
		if k > j {
			m := k + runWhile(s[k:], isPySpace)
			if m < len(s) && s[m] == ')' {
				return s[:m+1], s[i:k]
			}
		}
		return s[:1], ""
	}
	n := runWhile(s, func(r rune) bool { return !strings.ContainsRune(`\()[]:`, r) })
	return s[:n], ""
}

// parseWeight is Python's float() on a [+-]?[.\d]+ match (any Unicode
// decimal digits).
func parseWeight(w string) (float64, error) {
	var b strings.Builder
	for _, r := range w {
		if r >= utf8.RuneSelf && unicode.IsDigit(r) {
			r = '0' + digitValue(r)
		}
		b.WriteRune(r)
	}
	v, err := strconv.ParseFloat(b.String(), 64)
	if err != nil {
		return 0, fmt.Errorf("tokenizer: emphasis weight %q is not a number", w)
	}
	return v, nil
}

// digitValue is the value of a decimal digit: its offset from the start of
// its run of ten.
func digitValue(r rune) rune {
	lo := r
	for unicode.IsDigit(lo - 1) {
		lo--
	}
	return (r - lo) % 10
}

// splitBreak is re.split(r"\s*\bBREAK\b\s*", s).
func splitBreak(s string) []string {
	var parts []string
	start, from := 0, 0
	for {
		k := strings.Index(s[from:], "BREAK")
		if k < 0 {
			break
		}
		b, e := from+k, from+k+len("BREAK")
		before, _ := utf8.DecodeLastRuneInString(s[:b])
		after, _ := utf8.DecodeRuneInString(s[e:])
		if b > 0 && isWordClass(before) || e < len(s) && isWordClass(after) {
			from = b + 1
			continue
		}
		for b > start {
			r, size := utf8.DecodeLastRuneInString(s[:b])
			if !isPySpace(r) {
				break
			}
			b -= size
		}
		e += runWhile(s[e:], isPySpace)
		parts = append(parts, s[start:b])
		start, from = e, e
	}
	return append(parts, s[start:])
}
