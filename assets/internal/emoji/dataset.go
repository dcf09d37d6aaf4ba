package emoji

import (
	"context"
	"fmt"
	"image"
	"slices"
	"strings"
)

// Concept is a held-out emoji: kept out of base training, it is what
// Perfusion is evaluated on. Word is its superordinate word, a single
// token of the vocabulary, that the base model learns from other emoji.
type Concept struct {
	Runes []rune
	Name  string // emoji-test.txt name, to check the list against the file
	Word  string
}

// HeldOut returns the fixed list of held-out emoji (several subgroups,
// each with a superordinate word that other emoji's captions teach).
func HeldOut() []Concept {
	return []Concept{
		{[]rune{0x1F431}, "cat face", "cat"},
		{[]rune{0x1F436}, "dog face", "dog"},
		{[]rune{0x1F42D}, "mouse face", "mouse"},
		{[]rune{0x1F430}, "rabbit face", "rabbit"},
		{[]rune{0x1F42F}, "tiger face", "tiger"},
		{[]rune{0x1F434}, "horse face", "horse"},
		{[]rune{0x1F42E}, "cow face", "cow"},
		{[]rune{0x1F437}, "pig face", "pig"},
		{[]rune{0x1F600}, "grinning face", "face"},
		{[]rune{0x1F622}, "crying face", "face"},
		{[]rune{0x1F634}, "sleeping face", "face"},
		{[]rune{0x1F332}, "evergreen tree", "tree"},
		{[]rune{0x1F334}, "palm tree", "tree"},
		{[]rune{0x1F697}, "automobile", "car"},
		{[]rune{0x1F695}, "taxi", "car"},
		{[]rune{0x1F339}, "rose", "flower"},
		{[]rune{0x1F33B}, "sunflower", "flower"},
		{[]rune{0x1F337}, "tulip", "flower"},
		{[]rune{0x1F34E}, "red apple", "fruit"},
		{[]rune{0x1F34C}, "banana", "fruit"},
		{[]rune{0x1F3E0}, "house", "house"},
		{[]rune{0x2764, 0xFE0F}, "red heart", "heart"},
		{[]rune{0x1F426}, "bird", "bird"},
		{[]rune{0x1F41F}, "fish", "fish"},
		{[]rune{0x26BD}, "soccer ball", "ball"},
		{[]rune{0x1F3B8}, "guitar", "instrument"},
	}
}

// NumVariants is the number of caption templates (see Caption).
const NumVariants = 4

// Caption returns caption variant v (0..NumVariants-1) of e on bg:
//
//	0: "<name>, <subgroup words>, on a <colour> background"
//	1: "<name> on a <colour> background"
//	2: "<name>, <keyword>, <keyword>, <group words>, on a <colour> background"
//	3: "<name>, <subgroup words>"   (no colour: any background)
func Caption(e Emoji, bg Background, v int) string {
	on := "on a " + bg.Name + " background"
	name := Words(e.Name)
	switch v {
	case 1:
		return name + " " + on
	case 2:
		parts := []string{name}
		for _, k := range e.Keywords {
			if len(parts) == 3 {
				break
			}
			if k = Words(k); k != name && !slices.Contains(parts, k) {
				parts = append(parts, k)
			}
		}
		return strings.Join(append(parts, Words(e.Group), on), ", ")
	case 3:
		return name + ", " + Words(e.Subgroup)
	}
	return name + ", " + Words(e.Subgroup) + ", " + on
}

// Words lower-cases s and turns the separators of names, groups and
// subgroups ("face-smiling", "flag: japan", "smileys & emotion") into
// plain words ("face smiling", "flag japan", "smileys and emotion"), with
// curly apostrophes made straight (as the tokenizer's ftfy step does).
func Words(s string) string {
	s = strings.ToLower(s)
	s = strings.NewReplacer("’", "'", "‘", "'", "&", " and ", "-", " ", ":", " ", ",", " ", "“", " ", "”", " ", ".", " ", "!", " ").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

// Item is one emoji with its glyph scaled to the data set's size over a
// transparent background.
type Item struct {
	Emoji Emoji
	Glyph *image.NRGBA
}

// Image returns the item composited on bg as planes [3, S, S] in [-1, 1].
func (it Item) Image(bg Background) []float32 { return CHW(Composite(it.Glyph, bg.Color)) }

// Set is the data set: base-training items and held-out items (in
// HeldOut order), all at Size x Size pixels.
type Set struct {
	Size    int
	Train   []Item
	HeldOut []Item
	Skipped []string // emoji the font does not draw as one glyph
}

// Build loads the emoji list and renders every emoji at size x size.
// progress, when set, is called with the emoji done and the total.
func Build(ctx context.Context, p Paths, size int, progress func(done, total int)) (*Set, error) {
	if size < 8 {
		return nil, fmt.Errorf("emoji: image size %d too small (want at least 8)", size)
	}
	list, err := Load(p)
	if err != nil {
		return nil, err
	}
	f, err := OpenFont(p.Font)
	if err != nil {
		return nil, err
	}
	held := HeldOut()
	heldAt := map[string]int{}
	for i, c := range held {
		heldAt[string(c.Runes)] = i
	}
	s := &Set{Size: size, HeldOut: make([]Item, len(held))}
	for i, e := range list {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bm, err := f.Bitmap(e.Runes)
		if err != nil {
			s.Skipped = append(s.Skipped, fmt.Sprintf("%s %s", e, e.Name))
			continue
		}
		it := Item{Emoji: e, Glyph: Scale(bm, size)}
		if j, ok := heldAt[string(e.Runes)]; ok {
			if held[j].Name != e.Name {
				return nil, fmt.Errorf("emoji: held-out %s is %q in emoji-test.txt, want %q", e, e.Name, held[j].Name)
			}
			s.HeldOut[j] = it
			delete(heldAt, string(e.Runes))
		} else {
			s.Train = append(s.Train, it)
		}
		if progress != nil {
			progress(i+1, len(list))
		}
	}
	if len(heldAt) > 0 {
		var miss []string
		for k := range heldAt {
			miss = append(miss, codepoints([]rune(k)))
		}
		slices.Sort(miss)
		return nil, fmt.Errorf("emoji: held-out emoji missing from the data: %s", strings.Join(miss, ", "))
	}
	return s, nil
}

// Captions lists every caption of the training items (all backgrounds and
// variants), in a fixed order: the corpus the vocabulary is learned from.
func (s *Set) Captions() []string {
	list := make([]Emoji, len(s.Train))
	for i, it := range s.Train {
		list[i] = it.Emoji
	}
	return Captions(list)
}

// Captions lists every caption of the emoji of list (all backgrounds and
// variants) in a fixed order.
func Captions(list []Emoji) []string {
	var out []string
	for _, e := range list {
		for _, bg := range Backgrounds() {
			for v := range NumVariants {
				out = append(out, Caption(e, bg, v))
			}
		}
	}
	return out
}

// WithoutHeldOut returns list less the held-out emoji.
func WithoutHeldOut(list []Emoji) []Emoji {
	held := map[string]bool{}
	for _, c := range HeldOut() {
		held[string(c.Runes)] = true
	}
	var out []Emoji
	for _, e := range list {
		if !held[string(e.Runes)] {
			out = append(out, e)
		}
	}
	return out
}

// Superordinates lists the distinct words of HeldOut, in order.
func Superordinates() []string {
	var out []string
	for _, c := range HeldOut() {
		if !slices.Contains(out, c.Word) {
			out = append(out, c.Word)
		}
	}
	return out
}

// Subgroups lists the training subgroups in first-seen order, and each
// training item's subgroup index (for classifiers and evaluation).
func (s *Set) Subgroups() (names []string, index []int) {
	at := map[string]int{}
	for _, it := range s.Train {
		j, ok := at[it.Emoji.Subgroup]
		if !ok {
			j = len(names)
			at[it.Emoji.Subgroup] = j
			names = append(names, it.Emoji.Subgroup)
		}
		index = append(index, j)
	}
	return names, index
}
