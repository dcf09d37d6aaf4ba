package train

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/perfusion-studio/perfusion/inference/tokenizer"
)

// Templates are the training prompts (spec §6.2, textual-inversion style);
// "{}" is where the concept word (or the superordinate word) goes.
var Templates = []string{
	"a photo of a {}",
	"a good photo of a {}",
	"the photo of a {}",
	"a good photo of the {}",
	"image of a {}",
	"image of the {}",
	"A photograph of {}",
	"A {} shown in a photo",
	"A photo of {}",
}

// prompt is one tokenized training prompt.
type prompt struct {
	ids []int // [77], the word at pos
	pos int   // the position of the concept (or superordinate) word
}

// tokenizeTemplate lays out template with the word id in place of "{}":
// BOS, the template's ids around it, EOS, EOS padding (SD1.5's layout). The
// word's position comes from the layout itself, never from word counts
// (spec §10.7).
func tokenizeTemplate(tok *tokenizer.Tokenizer, template string, word int) (prompt, error) {
	before, after, ok := strings.Cut(template, "{}")
	if !ok {
		return prompt{}, fmt.Errorf("train: template %q has no {}", template)
	}
	pre, post := tok.Encode(before), tok.Encode(after)
	n := len(pre) + 1 + len(post)
	if n > tokenizer.ChunkTokens {
		return prompt{}, fmt.Errorf("train: template %q is %d tokens, at most %d", template, n, tokenizer.ChunkTokens)
	}
	ids := make([]int, 0, tokenizer.ContextLen)
	ids = append(ids, tok.BOS())
	ids = append(ids, pre...)
	pos := len(ids)
	ids = append(ids, word)
	ids = append(ids, post...)
	for len(ids) < tokenizer.ContextLen {
		ids = append(ids, tok.EOS())
	}
	return prompt{ids: ids, pos: pos}, nil
}

// SuperclassToken returns the single CLIP token of the superordinate word,
// or an error that suggests single-token words when it is several tokens
// (Perfusion locks keys to one token's encoding).
func SuperclassToken(tok *tokenizer.Tokenizer, word string) (int, error) {
	w := strings.TrimSpace(word)
	if w == "" {
		return 0, fmt.Errorf("train: no superordinate word (give what the subject is, one word such as %s)", strings.Join(Suggest(tok, "toy"), ", "))
	}
	ids := tok.Encode(w)
	if len(ids) == 1 && ids[0] < tok.VocabSize() && ids[0] != tok.BOS() && ids[0] != tok.EOS() {
		return ids[0], nil
	}
	msg := fmt.Sprintf("train: the superordinate word %q is %d CLIP tokens, it must be exactly one", w, len(ids))
	if s := Suggest(tok, w); len(s) > 0 {
		msg += "; try " + strings.Join(s, ", ")
	}
	return 0, fmt.Errorf("%s", msg)
}

// commonClasses are everyday superordinate words, candidates for
// suggestions (only those that are one token are offered).
var commonClasses = []string{
	"person", "man", "woman", "boy", "girl", "baby", "child", "face",
	"dog", "cat", "puppy", "kitten", "bird", "horse", "rabbit", "bear", "fish", "animal",
	"toy", "teddy", "doll", "plush", "figure", "statue", "sculpture", "robot",
	"car", "bike", "bicycle", "truck", "boat", "plane", "train",
	"cup", "mug", "bowl", "vase", "pot", "teapot", "bottle", "glass", "lamp", "clock", "watch",
	"bag", "backpack", "shoe", "shoes", "hat", "shirt", "dress", "jacket", "glasses",
	"chair", "table", "sofa", "bed", "house", "building", "tower", "castle", "church",
	"flower", "plant", "tree", "cake", "pizza", "fruit", "food",
	"painting", "drawing", "sketch", "style", "logo", "pattern", "texture",
	"candle", "book", "guitar", "phone", "computer", "camera", "jewelry", "ring", "necklace",
}

// Suggest returns up to five single-token words close to word: its own
// words that are single tokens first, then common superordinate words by
// spelling distance.
func Suggest(tok *tokenizer.Tokenizer, word string) []string {
	single := func(w string) bool {
		ids := tok.Encode(w)
		return len(ids) == 1 && ids[0] < tok.VocabSize()
	}
	var out []string
	add := func(w string) {
		if len(out) < 5 && w != "" && !slices.Contains(out, w) && single(w) {
			out = append(out, w)
		}
	}
	lw := strings.ToLower(word)
	parts := strings.FieldsFunc(lw, func(r rune) bool { return !unicode.IsLetter(r) })
	for i := len(parts) - 1; i >= 0; i-- { // the head noun is usually last
		add(parts[i])
	}
	cands := slices.Clone(commonClasses)
	slices.SortStableFunc(cands, func(a, b string) int { return distance(lw, a) - distance(lw, b) })
	for _, c := range cands {
		add(c)
	}
	return out
}

// distance is the Levenshtein distance of two strings (in runes), or
// zero-ish for a substring relation (a containing word is close).
func distance(a, b string) int {
	if a != b && (strings.Contains(a, b) || strings.Contains(b, a)) {
		return 1
	}
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := prev[j-1]
			if ra[i-1] != rb[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
