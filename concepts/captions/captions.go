// Package captions writes the caption corpus that Perfusion Studio
// estimates the covariance C of text encodings from (PERFUSION.md §4): the
// reference implementations use 100K LAION captions, which the project does
// not ship; instead captions are composed in code from the word lists in
// words.go (animals, objects, people, places, styles, actions,
// compositions, colours, lighting, backgrounds) and a dozen templates in
// the shapes of real image captions and prompts: plain descriptions, photo
// captions, art prompts with comma-separated modifiers, product shots and
// short labels. The corpus is a pure function of the count and the seed.
package captions

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Version identifies the word lists, templates and generator; it changes
// whenever Generate's output for a given count and seed would change.
const Version = 1

// DefaultCount and DefaultSeed give the corpus the app uses.
const (
	DefaultCount = 4000
	DefaultSeed  = 20230502 // Perfusion's arXiv submission date
)

// Default returns the app's corpus: Generate(DefaultCount, DefaultSeed).
func Default() []string {
	c, err := Generate(DefaultCount, DefaultSeed)
	if err != nil {
		panic(err) // the default count is far below the number of captions the templates can make
	}
	return c
}

// Generate returns n distinct captions drawn with the given seed. The same
// (n, seed) always gives the same captions in the same order, and the
// first k captions of Generate(n, s) are those of Generate(k, s).
func Generate(n int, seed uint64) ([]string, error) {
	if n < 0 {
		return nil, fmt.Errorf("captions: count %d is negative", n)
	}
	r := rng{state: seed}
	seen := make(map[string]bool, n)
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 20*n+1000 {
			return nil, fmt.Errorf("captions: only %d distinct captions found for %d", len(out), n)
		}
		c := templates[r.intn(len(templates))](&r)
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// Hash is a hex SHA-256 of the captions (one per line), for cache keys.
func Hash(captions []string) string {
	h := sha256.New()
	for _, c := range captions {
		h.Write([]byte(c))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rng is SplitMix64 (Steele, Lea, Flood 2014), written out here so that the
// corpus never depends on a library's generator.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n) (multiply-high; the bias is below 2⁻⁵⁰
// for the list sizes used here).
func (r *rng) intn(n int) int {
	hi, _ := mul64(r.next(), uint64(n))
	return int(hi)
}

func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1, w2 := t&mask32, t>>32
	w1 += a0 * b1
	return a1*b1 + w2 + w1>>32, a * b
}

// chance is true with probability p/100.
func (r *rng) chance(p int) bool { return r.intn(100) < p }

func (r *rng) pick(list []string) string { return list[r.intn(len(list))] }

// article puts "a" or "an" before a noun phrase.
func article(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + s
	}
	return "a " + s
}

// plural makes a rough plural of a noun phrase's last word ("pair of x"
// stays as it is for the phrase's head).
func plural(s string) string {
	if strings.HasPrefix(s, "pair of ") || strings.HasPrefix(s, "bowl of ") || strings.HasPrefix(s, "loaf of ") || strings.HasPrefix(s, "bouquet of ") {
		head, rest, _ := strings.Cut(s, " of ")
		return plural(head) + " of " + rest
	}
	switch {
	case strings.HasSuffix(s, "man"):
		return s[:len(s)-3] + "men"
	case strings.HasSuffix(s, "mouse"):
		return s[:len(s)-5] + "mice"
	case strings.HasSuffix(s, "sheep"), strings.HasSuffix(s, "deer"), strings.HasSuffix(s, "fish"):
		return s
	case strings.HasSuffix(s, "child"):
		return s + "ren"
	case strings.HasSuffix(s, "y") && !strings.HasSuffix(s, "ey") && !strings.HasSuffix(s, "ay") && !strings.HasSuffix(s, "oy"):
		return s[:len(s)-1] + "ies"
	case strings.HasSuffix(s, "s"), strings.HasSuffix(s, "x"), strings.HasSuffix(s, "ch"), strings.HasSuffix(s, "sh"):
		return s + "es"
	case strings.HasSuffix(s, "lf"):
		return s[:len(s)-1] + "ves"
	}
	return s + "s"
}
