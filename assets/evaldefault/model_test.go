package evaldefault

import (
	"context"
	"fmt"
	"image"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// TestTrainedModelBackgrounds checks learned text conditioning of the
// trained default model: "<emoji> on a <colour> background" for each of
// the six data-set colours gives that background (read from the image's
// border) in at least 80% of the images (issue 8's target for red, here
// for all six; chance is 1 in 6). The full figures are measured by
// `perfusion eval-default` (see assets/README.md). Skipped without the
// model or the data packages (failed under CI=true).
func TestTrainedModelBackgrounds(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: generates 24 images with the default model")
	}
	p, set := trainedModel(t)
	ctx := context.Background()
	size := p.NativeSize()
	if size != 32 && size != 64 {
		t.Fatalf("native size %d, want one of the emoji model's sizes, 32 or 64", size)
	}
	const perColour = 4
	var prompts []string
	var want []int
	for c, bg := range emoji.Backgrounds() {
		for k := range perColour {
			item := set.Train[(c*perColour+k)*len(set.Train)/(perColour*len(emoji.Backgrounds()))]
			prompts = append(prompts, fmt.Sprintf("%s on a %s background", emoji.Words(item.Emoji.Name), bg.Name))
			want = append(want, c)
		}
	}
	var images []*image.RGBA
	for k := 0; k < len(prompts); k += genBatch {
		res, err := p.Generate(ctx, pipeline.Request{Prompts: prompts[k:min(k+genBatch, len(prompts))], Seed: 11 + uint64(k),
			Steps: DefaultSteps, CFG: DefaultCFG, Sampler: DefaultSampler, Width: size, Height: size}, nil)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, res.Images...)
	}
	hits := 0
	for i, img := range images {
		got, _ := Background(img)
		ok := got == want[i]
		if ok {
			hits++
		}
		t.Logf("%-55s border %-6s %v", prompts[i], emoji.Backgrounds()[got].Name, ok)
	}
	t.Logf("%d of %d backgrounds as prompted (chance 1 in %d)", hits, len(prompts), len(emoji.Backgrounds()))
	// 80%: 20 of 24.
	if least := (4*len(prompts) + 4) / 5; hits < least {
		t.Errorf("%d of %d backgrounds as prompted, want at least %d (chance is %d)", hits, len(prompts), least, len(prompts)/len(emoji.Backgrounds()))
	}
}

// TestTrainedModelPersonalization is issue 8's text-conditioning and
// personalization checks, sized for CI, with a classifier trained on the
// training emoji (the quick one). Text: 20 held-in captions, one from each
// of the 20 largest subgroups, must be classified into the prompted
// subgroup at least three times as often as chance. Personalization, on
// one held-out emoji: the evergreen tree, never seen in base training (one
// of the four of five concepts `perfusion eval-default` finds nearer than
// their word on the committed model; the grinning face fails), is trained as a
// Perfusion concept with the Quick preset from 5 augmented views (never on
// red), and its "<concept>" generations must be nearer the emoji, in the
// features of a classifier trained on the training emoji, than
// generations of its superordinate word "tree"; and
// "<concept> on a red background" must keep the red background at least
// half of the time. Skipped without the model or the data packages
// (failed under CI=true).
func TestTrainedModelPersonalization(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: trains a classifier and a concept on the default model")
	}
	p, set := trainedModel(t)
	ctx := context.Background()
	r, err := Run(ctx, p, Options{
		WorkDir: t.TempDir(), Quick: true, Set: set, Seed: 1,
		SkipBackground: true, Captions: MinSubgroups, Subgroups: MinSubgroups,
		Concepts: []string{"evergreen tree"}, Samples: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("classifier: %s on the training emoji, %s on the held-out ones", pct(r.Classifier.Train), pct(r.Classifier.HeldOut))
	for _, pr := range r.Text.Prompts {
		t.Logf("%-70s %-22s -> %s", pr.Prompt, pr.Want, pr.Got)
	}
	t.Logf("text: %s into the prompted subgroup (chance %.0f%%)", pct(r.Text.Accuracy), 100*r.Text.Chance)
	if r.Text.Accuracy.Share() < 3*r.Text.Chance {
		t.Errorf("text conditioning: %s into the prompted subgroup, want at least 3 times chance (%.0f%%)", pct(r.Text.Accuracy), 300*r.Text.Chance)
	}
	c := r.Personal.Concepts[0]
	t.Logf("%s: <%s> %.3f, %q %.3f from the emoji; on red %s; trained in %s (%d steps at %d px) %s",
		c.Name, c.Concept, c.ConceptDist, c.Word, c.WordDist, pct(c.Red), c.TrainTime.Round(time.Second), c.Steps, c.Size, c.Note)
	if !c.Closer() {
		t.Errorf("<%s> generations are %.3f from the emoji, the word %q's %.3f: want the concept nearer", c.Concept, c.ConceptDist, c.Word, c.WordDist)
	}
	if c.Red.Share() < 0.5 {
		t.Errorf("<%s> on a red background: red in %s, want at least half", c.Concept, pct(c.Red))
	}
}

// trainedModel loads the trained default model (modelDir) and the emoji
// data set.
func trainedModel(t *testing.T) (*pipeline.Pipeline, *emoji.Set) {
	t.Helper()
	dir := modelDir(t)
	set := testSet(t)
	p, err := pipeline.Load(context.Background(), dir, pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p, set
}
