package evaldefault

import (
	"cmp"
	"context"
	"image"
	"math/rand/v2"
	"slices"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
)

// PromptResult is one generated prompt and what was measured on it.
type PromptResult struct {
	Prompt string
	Want   string // the prompted subgroup (text) or background (background)
	Got    string // the classifier's subgroup, or the border's background
}

// TextResult is the text-conditioning figure.
type TextResult struct {
	Prompts   []PromptResult
	Subgroups int // distinct prompted subgroups
	Accuracy  Accuracy
	Chance    float64 // 1 / the evaluated subgroups
}

// BackgroundResult is the red-background figure.
type BackgroundResult struct {
	Prompts []PromptResult
	Red     Accuracy // images whose background is red
}

// Caption is one chosen held-in caption.
type Caption struct {
	Text     string
	Emoji    emoji.Emoji
	Subgroup int // index into the classifier's classes
}

// HeldInCaptions chooses n training captions spread over the k largest
// subgroups (by falling emoji count, first seen first on ties; all
// subgroups when k <= 0): one emoji from each in turn (drawn from seed,
// without repeats), so n captions cover min(n, k) subgroups. Caption
// variants and backgrounds cycle, so the captions look like the training
// captions, and each subgroup's captions take different variants. red, when set, makes every caption "<name> on a red
// background" instead (offset emoji, so the background prompts differ
// from the text prompts).
func HeldInCaptions(set *emoji.Set, n, k int, seed uint64, red bool) []Caption {
	classes, index := set.Subgroups()
	members := make([][]int, len(classes))
	for i, k := range index {
		members[k] = append(members[k], i)
	}
	order := make([]int, len(classes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(members[b]), len(members[a])) })
	if k > 0 && k < len(order) {
		order = order[:k]
	}
	r := rand.New(rand.NewPCG(seed, 0x63617074))
	for _, m := range members {
		r.Shuffle(len(m), func(i, j int) { m[i], m[j] = m[j], m[i] })
	}
	bgs := emoji.Backgrounds()
	red0 := BackgroundIndex("red")
	used := make([]int, len(classes))
	if red {
		for i := range used {
			used[i] = len(members[i]) / 2 // other emoji than the text captions
		}
	}
	var out []Caption
	for round := 0; len(out) < n && round < len(set.Train); round++ {
		for j, g := range order {
			if len(out) == n {
				break
			}
			if len(members[g]) == 0 {
				continue
			}
			e := set.Train[members[g][used[g]%len(members[g])]].Emoji
			used[g]++
			var text string
			if red {
				text = emoji.Caption(e, bgs[red0], 1)
			} else {
				// The variant moves on with each round, so a subgroup's
				// captions are not all of one variant (with 20 subgroups
				// and 4 variants, i%4 would give each subgroup one).
				i := len(out)
				text = emoji.Caption(e, bgs[i%len(bgs)], (j+round)%emoji.NumVariants)
			}
			out = append(out, Caption{Text: text, Emoji: e, Subgroup: g})
		}
	}
	return out
}

// text generates the held-in captions and classifies each image into one
// of the prompted subgroups.
func (ev *evaluator) text(ctx context.Context) (*TextResult, error) {
	caps := HeldInCaptions(ev.set, ev.o.Captions, ev.o.Subgroups, ev.o.Seed, false)
	prompts := make([]string, len(caps))
	for i, c := range caps {
		prompts[i] = c.Text
	}
	imgs, err := ev.generate(ctx, prompts, ev.o.Seed, nil, StageText, "text")
	if err != nil {
		return nil, err
	}
	in := make([][]float32, len(imgs))
	for i, img := range imgs {
		in[i] = Input(img)
	}
	seen := map[int]bool{}
	var among []int
	for _, c := range caps {
		if !seen[c.Subgroup] {
			seen[c.Subgroup] = true
			among = append(among, c.Subgroup)
		}
	}
	got, _, err := ev.clf.PredictAmong(ev.e, in, among)
	if err != nil {
		return nil, err
	}
	res := &TextResult{Chance: 1 / float64(len(among))}
	for i, c := range caps {
		res.Prompts = append(res.Prompts, PromptResult{Prompt: c.Text, Want: ev.clf.Classes[c.Subgroup], Got: ev.clf.Classes[got[i]]})
		res.Accuracy.Total++
		if got[i] == c.Subgroup {
			res.Accuracy.Correct++
		}
	}
	res.Subgroups = len(seen)
	return res, nil
}

// background generates "<name> on a red background" prompts and reads
// their border colour.
func (ev *evaluator) background(ctx context.Context) (*BackgroundResult, error) {
	caps := HeldInCaptions(ev.set, ev.o.RedPrompts, 0, ev.o.Seed, true)
	prompts := make([]string, len(caps))
	for i, c := range caps {
		prompts[i] = c.Text
	}
	imgs, err := ev.generate(ctx, prompts, ev.o.Seed+1000, nil, StageBackground, "red")
	if err != nil {
		return nil, err
	}
	return redShare(prompts, imgs), nil
}

// redShare classifies each image's background against red.
func redShare(prompts []string, imgs []*image.RGBA) *BackgroundResult {
	bgs := emoji.Backgrounds()
	red := BackgroundIndex("red")
	res := &BackgroundResult{}
	for i, img := range imgs {
		bg, _ := Background(img)
		res.Prompts = append(res.Prompts, PromptResult{Prompt: prompts[i], Want: "red", Got: bgs[bg].Name})
		res.Red.Total++
		if bg == red {
			res.Red.Correct++
		}
	}
	return res
}
