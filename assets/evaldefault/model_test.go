package evaldefault

import (
	"bytes"
	"context"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// TestTrainedModel checks learned behaviour of the trained default model
// (issue 8): a few held-in captions are classified into their subgroup
// well above chance, and one held-out emoji trained as a concept gives
// generations nearer to it than its superordinate word does. It trains a
// shorter classifier than the full evaluation. Skipped without the model
// or the data packages (failed under CI=true).
func TestTrainedModel(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: trains a classifier and a concept (a few minutes of 2 cores)")
	}
	dir := modelDir(t)
	set := testSet(t)
	ctx := context.Background()
	p, err := pipeline.Load(ctx, dir, pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.NativeSize() != 64 {
		t.Fatalf("native size %d, want the emoji model's 64", p.NativeSize())
	}
	rep, err := Run(ctx, p, Options{
		Set: set, Captions: 10, SkipBackground: true, Concepts: []string{"cat face"}, Samples: 3,
		Classifier: ClassifierOptions{Steps: 400},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	rep.WriteTo(&b)
	t.Log("\n" + b.String())
	// Well above chance (1/99): at least 3 of 10 (30x chance).
	if a := rep.Text.Accuracy; a.Correct < 3 {
		t.Errorf("text conditioning: %d of %d captions classified into their subgroup, want >= 3", a.Correct, a.Total)
	}
	c := rep.Personal.Concepts[0]
	if !c.Closer() {
		t.Errorf("<%s> generations are %.3f from the emoji, %q generations %.3f: want the concept nearer", c.Concept, c.ConceptDist, c.Word, c.WordDist)
	}
}
