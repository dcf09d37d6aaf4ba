package evaldefault

import (
	"context"
	"fmt"
	"image"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// TestTrainedModelBackgrounds checks learned text conditioning of the
// trained default model: "<emoji> on a <colour> background" for each of
// the six data-set colours gives that background (read from the image's
// border) far more often than chance (1 in 6). The stricter
// figures (subgroup accuracy, red share, personalization) are measured by
// `perfusion eval-default`; the current model does not meet them yet (see
// assets/README.md), so they are not asserted here. Skipped without the
// model or the data packages (failed under CI=true).
func TestTrainedModelBackgrounds(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: generates 24 images with the default model")
	}
	dir := modelDir(t)
	set := testSet(t)
	ctx := context.Background()
	p, err := pipeline.Load(ctx, dir, pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
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
	// Three times chance: 12 of 24.
	if least := 3 * len(prompts) / len(emoji.Backgrounds()); hits < least {
		t.Errorf("%d of %d backgrounds as prompted, want at least %d (chance is %d)", hits, len(prompts), least, len(prompts)/len(emoji.Backgrounds()))
	}
}
