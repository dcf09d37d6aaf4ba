// Package tokenizer is CLIP's byte-level BPE tokenizer as Stable Diffusion 1.x
// uses it: openai/CLIP clip/simple_tokenizer.py (SimpleTokenizer.encode) and
// the Hugging Face CLIPTokenizer of openai/clip-vit-large-patch14 that SD1.5's
// FrozenCLIPEmbedder calls (truncation to 77, padding with <|endoftext|>).
//
// Pipeline for one prompt (see clean.go, split.go, bpe.go):
//
//	text -> ftfy.fix_text subset -> html.unescape twice -> strip
//	     -> whitespace runs to one space -> Python lower()
//	     -> split with CLIP's regex -> UTF-8 bytes -> bytes_to_unicode
//	     -> byte-pair merges by rank, "</w>" on each word's last symbol -> ids
//
// The vocabulary comes from openai's bpe_simple_vocab_16e6.txt.gz (a file,
// or its bytes as a program embeds them) or from a diffusers tokenizer
// folder (vocab.json + merges.txt); Locate finds one for a checkpoint. Prompt adds the AUTOMATIC1111 web UI's emphasis syntax and its
// 75-token chunking (prompt.go). Layout legend: one CLIP sequence is
// ContextLen ids = BOS + ChunkTokens content ids + EOS, padded with EOS.
package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"unicode"
)

const (
	// ContextLen is the number of ids in one CLIP text sequence.
	ContextLen = 77
	// ChunkTokens is the number of content ids between BOS and EOS.
	ChunkTokens = ContextLen - 2

	// clipMerges is how many merges CLIP keeps from the BPE file (49152-256-2).
	clipMerges = 48894
	startToken = "<|startoftext|>"
	endToken   = "<|endoftext|>"
	endOfWord  = "</w>"
	// maxCache bounds the word cache; it is emptied when full.
	maxCache = 1 << 14
)

// ErrTokenExists is returned (wrapped) by AddToken for a word added before.
var ErrTokenExists = errors.New("tokenizer: token already added")

// merge is one BPE rule: its rank (lower merges first) and the merged id.
type merge struct{ rank, id int32 }

// Tokenizer encodes prompts to CLIP token ids. It is safe for concurrent use;
// set SkipHTMLUnescape before sharing it.
type Tokenizer struct {
	// SkipHTMLUnescape drops the two html.unescape calls of openai/CLIP's
	// cleaning, giving the ids of Hugging Face's CLIPTokenizer (what diffusers
	// runs). They differ only on text with HTML entities that ftfy leaves alone.
	SkipHTMLUnescape bool

	tokens   []string       // id -> vocabulary string, [V]
	ids      map[string]int // vocabulary string -> id
	byteSym  [256]int32     // id of each byte's symbol
	byteEnd  [256]int32     // id of each byte's symbol + "</w>"
	merges   map[uint64]merge
	bos, eos int
	comma    int  // id of ",</w>", where chunking prefers to break
	ordered  bool // every merge ranks after those that built its symbols

	mu       sync.RWMutex       // guards added, addedIDs and cache
	added    map[string]int     // cleaned word -> id, for AddToken
	addedIDs []string           // id-len(tokens) -> cleaned word
	cache    map[string][]int32 // piece -> ids
}

// FromGzipBPE builds the tokenizer from openai's gzipped BPE merges file
// (bpe_simple_vocab_16e6.txt.gz): 256 byte symbols, the same with "</w>", the
// first 48,894 merges joined, then <|startoftext|> and <|endoftext|>.
func FromGzipBPE(r io.Reader) (*Tokenizer, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: bpe file is not gzip: %w", err)
	}
	defer zr.Close()
	return fromBPEText(zr)
}

// fromBPEText reads the uncompressed BPE merges file.
func fromBPEText(r io.Reader) (*Tokenizer, error) {
	pairs, err := readMerges(r, true)
	if err != nil {
		return nil, err
	}
	if len(pairs) < clipMerges {
		return nil, fmt.Errorf("tokenizer: bpe file has %d merges, CLIP needs %d (is it bpe_simple_vocab_16e6.txt.gz?)", len(pairs), clipMerges)
	}
	pairs = pairs[:clipMerges]
	order, sym := bytesToUnicode()
	vocab := make([]string, 0, 2*256+len(pairs)+2)
	for _, b := range order {
		vocab = append(vocab, string(sym[b]))
	}
	for _, b := range order {
		vocab = append(vocab, string(sym[b])+endOfWord)
	}
	for _, p := range pairs {
		vocab = append(vocab, p[0]+p[1])
	}
	vocab = append(vocab, startToken, endToken)
	ids := make(map[string]int, len(vocab))
	for i, v := range vocab {
		ids[v] = i // later entries win, as in Python's dict(zip(vocab, range))
	}
	return build(vocab, ids, pairs)
}

// FromVocabMerges builds the tokenizer from a Hugging Face tokenizer folder's
// vocab.json (string -> id) and merges.txt ("#version" line, then one merge a
// line; like CLIPTokenizer, at most the first 48,894 merges are used).
func FromVocabMerges(vocab, merges io.Reader) (*Tokenizer, error) {
	var m map[string]int
	if err := json.NewDecoder(vocab).Decode(&m); err != nil {
		return nil, fmt.Errorf("tokenizer: vocab.json: %w", err)
	}
	tokens := make([]string, len(m))
	seen := make([]bool, len(m))
	for s, id := range m {
		if id < 0 || id >= len(m) || seen[id] {
			return nil, fmt.Errorf("tokenizer: vocab.json ids must be 0..%d, each once (%q has %d)", len(m)-1, s, id)
		}
		tokens[id], seen[id] = s, true
	}
	pairs, err := readMerges(merges, false)
	if err != nil {
		return nil, err
	}
	if len(pairs) > clipMerges {
		pairs = pairs[:clipMerges]
	}
	return build(tokens, m, pairs)
}

// readMerges reads merge lines as pairs. A BPE file's first line is always
// a header; a merges.txt header is skipped if it starts with "#".
func readMerges(r io.Reader, skipFirst bool) ([][2]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var pairs [][2]string
	for n := 0; sc.Scan(); n++ {
		line := sc.Text()
		if n == 0 && (skipFirst || strings.HasPrefix(line, "#")) {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("tokenizer: merges line %d: want two symbols, got %q", n+1, line)
		}
		pairs = append(pairs, [2]string{f[0], f[1]})
		if skipFirst && len(pairs) == clipMerges {
			break // the BPE file holds more merges than CLIP uses
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: read merges: %w", err)
	}
	return pairs, nil
}

// build checks the vocabulary and indexes the merges.
func build(tokens []string, ids map[string]int, pairs [][2]string) (*Tokenizer, error) {
	t := &Tokenizer{
		tokens: tokens,
		ids:    ids,
		merges: make(map[uint64]merge, len(pairs)),
		added:  map[string]int{},
		cache:  map[string][]int32{},
	}
	_, sym := bytesToUnicode()
	for b := range 256 {
		s, ok := ids[string(sym[b])]
		e, ok2 := ids[string(sym[b])+endOfWord]
		if !ok || !ok2 {
			return nil, fmt.Errorf("tokenizer: vocabulary lacks the byte symbol %q (or with </w>)", string(sym[b]))
		}
		t.byteSym[b], t.byteEnd[b] = int32(s), int32(e)
	}
	var ok bool
	if t.bos, ok = ids[startToken]; !ok {
		return nil, fmt.Errorf("tokenizer: vocabulary lacks %s", startToken)
	}
	if t.eos, ok = ids[endToken]; !ok {
		return nil, fmt.Errorf("tokenizer: vocabulary lacks %s", endToken)
	}
	if t.comma, ok = ids[","+endOfWord]; !ok {
		return nil, fmt.Errorf("tokenizer: vocabulary lacks %q", ","+endOfWord)
	}
	for rank, p := range pairs {
		a, okA := ids[p[0]]
		b, okB := ids[p[1]]
		m, okM := ids[p[0]+p[1]]
		if !okA || !okB || !okM {
			return nil, fmt.Errorf("tokenizer: merge %d (%q %q) uses symbols missing from the vocabulary", rank+1, p[0], p[1])
		}
		// a repeated pair takes its last rank, as Python's dict(zip(merges, ranks))
		t.merges[pairKey(int32(a), int32(b))] = merge{rank: int32(rank), id: int32(m)}
	}
	t.ordered = mergesOrdered(t.merges)
	return t, nil
}

// mergesOrdered reports whether every merge ranks after all merges that
// produce either of its two symbols (true of any BPE training output).
func mergesOrdered(merges map[uint64]merge) bool {
	made := map[int32]int32{} // symbol id -> highest rank of a merge making it
	for _, m := range merges {
		if r, ok := made[m.id]; !ok || m.rank > r {
			made[m.id] = m.rank
		}
	}
	for k, m := range merges {
		a, b := int32(k>>32), int32(uint32(k))
		if r, ok := made[a]; ok && r >= m.rank {
			return false
		}
		if r, ok := made[b]; ok && r >= m.rank {
			return false
		}
	}
	return true
}

// VocabSize is the number of ids, added tokens included (49408 for CLIP).
func (t *Tokenizer) VocabSize() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.tokens) + len(t.addedIDs)
}

// BOS is the id of <|startoftext|> (49406 for CLIP).
func (t *Tokenizer) BOS() int { return t.bos }

// EOS is the id of <|endoftext|> (49407 for CLIP), also used as padding.
func (t *Tokenizer) EOS() int { return t.eos }

// Encode returns the BPE ids of text, without BOS/EOS and without truncation.
func (t *Tokenizer) Encode(text string) []int {
	return t.encode(text, nil)
}

// encode is Encode with per-call words (nil: none).
func (t *Tokenizer) encode(text string, extra *callWords) []int {
	var out []int
	t.encodeClean(t.clean(text), extra, func(id int) { out = append(out, id) })
	return out
}

// encodeClean calls emit for every id of already-cleaned text.
func (t *Tokenizer) encodeClean(clean string, extra *callWords, emit func(int)) {
	t.pieces(clean, extra, func(piece string, added int) {
		switch {
		case added >= 0:
			emit(added)
		case piece == startToken:
			emit(t.bos)
		case piece == endToken:
			emit(t.eos)
		default:
			for _, id := range t.bpe(piece) {
				emit(int(id))
			}
		}
	})
}

// IDs77 returns SD1.5's layout of text: BOS, the first 75 BPE ids, EOS, then
// EOS padding to 77 ids.
func (t *Tokenizer) IDs77(text string) []int {
	return t.layout(t.Encode(text))
}

// layout truncates ids to ChunkTokens and lays them out as one sequence.
func (t *Tokenizer) layout(ids []int) []int {
	out := make([]int, ContextLen)
	out[0] = t.bos
	n := copy(out[1:ChunkTokens+1], ids)
	for i := 1 + n; i < ContextLen; i++ {
		out[i] = t.eos
	}
	return out
}

// Lookup returns the ids word encodes to when it stands alone in a prompt
// (for Perfusion, to find a concept or superclass word's position in the
// ids); ok is false when it encodes to nothing. A word whose ids have length 1
// is a single token.
func (t *Tokenizer) Lookup(word string) (ids []int, ok bool) {
	ids = t.Encode(word)
	return ids, len(ids) > 0
}

// AddToken adds a word with a new id (49408, 49409, …), e.g. a placeholder
// for a learned embedding. The word is cleaned like a prompt (so matched
// case-insensitively) and must be one non-empty word without spaces; once
// added, Encode emits its id wherever the word appears in a prompt not glued
// to letters or digits (an added word shadows an ordinary word of the same
// spelling). Adding it again returns its id and an error wrapping
// ErrTokenExists.
func (t *Tokenizer) AddToken(s string) (int, error) {
	w, err := t.addable(s)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.added[w]; ok {
		return id, fmt.Errorf("%w: %q is id %d", ErrTokenExists, w, id)
	}
	id := len(t.tokens) + len(t.addedIDs)
	t.added[w] = id
	t.addedIDs = append(t.addedIDs, w)
	return id, nil
}

// addable returns the cleaned form of a word to add, or why it cannot be.
func (t *Tokenizer) addable(s string) (string, error) {
	w := t.clean(s)
	if w == "" || strings.IndexFunc(w, unicode.IsSpace) >= 0 {
		return "", fmt.Errorf("tokenizer: added token %q must be one word without spaces", s)
	}
	if w == startToken || w == endToken {
		return "", fmt.Errorf("tokenizer: cannot add the special token %q", s)
	}
	return w, nil
}

// addedWords returns the added words, longest first (nil if none).
func (t *Tokenizer) addedWords() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.addedIDs) == 0 {
		return nil
	}
	ws := append([]string(nil), t.addedIDs...)
	sort.SliceStable(ws, func(i, j int) bool { return len(ws[i]) > len(ws[j]) })
	return ws
}

// addedID returns the id of an added word.
func (t *Tokenizer) addedID(w string) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.added[w]
}

// Token returns the vocabulary string of id ("a</w>", "<|endoftext|>"; added
// words as added), or "" if id is out of range.
func (t *Tokenizer) Token(id int) string {
	if id >= 0 && id < len(t.tokens) {
		return t.tokens[id]
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i := id - len(t.tokens); i >= 0 && i < len(t.addedIDs) {
		return t.addedIDs[i] + endOfWord
	}
	return ""
}

// Decode turns ids back into text as openai/CLIP's decode does: "</w>"
// becomes a space, byte symbols become bytes (invalid UTF-8 becomes U+FFFD).
// Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	dec := byteDecoder()
	var b []byte
	for _, id := range ids {
		tok := t.Token(id)
		if id >= len(t.tokens) { // added words are plain text
			b = append(b, tok...)
			continue
		}
		for _, r := range tok {
			if c, ok := dec[r]; ok {
				b = append(b, c)
			}
		}
	}
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), endOfWord, " ")
}
