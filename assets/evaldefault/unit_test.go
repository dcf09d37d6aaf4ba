package evaldefault

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/assets/internal/train"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// xentRef is the cross-entropy in float64, straight from the formula.
func xentRef(z []float64, y []int, k int) float64 {
	var l float64
	for b, c := range y {
		var s float64
		for j := range k {
			s += math.Exp(z[b*k+j])
		}
		l -= math.Log(math.Exp(z[b*k+c]) / s)
	}
	return l / float64(len(y))
}

func TestCrossEntropy(t *testing.T) {
	const b, k = 3, 5
	r := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, b*k)
	for i := range z {
		z[i] = float32(4 * r.NormFloat64())
	}
	y := []int{0, 3, 4}
	zt, err := tensor.NewParam(z, b, k)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := crossEntropy(zt, y)
	if err != nil {
		t.Fatal(err)
	}
	z64 := make([]float64, len(z))
	for i, v := range z {
		z64[i] = float64(v)
	}
	if got, want := float64(loss.Data()[0]), xentRef(z64, y, k); math.Abs(got-want) > 1e-5*max(1, want) {
		t.Fatalf("loss %g, float64 reference %g", got, want)
	}
	if err := train.Backward(loss); err != nil {
		t.Fatal(err)
	}
	g := zt.Grad()
	const h = 1e-6
	for i := range z64 {
		p, m := append([]float64(nil), z64...), append([]float64(nil), z64...)
		p[i] += h
		m[i] -= h
		fd := (xentRef(p, y, k) - xentRef(m, y, k)) / (2 * h)
		if math.Abs(float64(g[i])-fd) > 1e-5 {
			t.Errorf("grad[%d] = %g, finite difference %g", i, g[i], fd)
		}
	}
	if _, err := crossEntropy(zt, []int{0, 5, 1}); err == nil {
		t.Error("label out of range: no error")
	}
	if _, err := crossEntropy(zt, []int{0}); err == nil {
		t.Error("label count mismatch: no error")
	}
}

func TestInputAverages(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			v := uint8(0)
			if x%2 == 1 {
				v = 255
			}
			img.SetRGBA(x, y, color.RGBA{v, 255, 0, 255})
		}
	}
	in := Input(img)
	n := InputSize * InputSize
	if len(in) != 3*n {
		t.Fatalf("%d values, want %d", len(in), 3*n)
	}
	for i := range n {
		if math.Abs(float64(in[i])) > 1e-6 || in[n+i] != 1 || in[2*n+i] != -1 {
			t.Fatalf("pixel %d: %g %g %g, want 0 (the 2x2 mean of 0 and 255), 1, -1", i, in[i], in[n+i], in[2*n+i])
		}
	}
}

// TestBackgroundOfRenders: the border classification finds the
// background of data-set images, as rendered and under the views used
// for augmentation and concepts.
func TestBackgroundOfRenders(t *testing.T) {
	set := testSet(t)
	bgs := emoji.Backgrounds()
	r := rand.New(rand.NewPCG(3, 4))
	wrong := 0
	for i := 0; i < len(set.Train); i += 7 {
		it := set.Train[i]
		for k, bg := range bgs {
			if got, share := Background(emoji.Composite(it.Glyph, bg.Color)); got != k || share < 0.9 {
				t.Fatalf("%s on %s: %s (share %.2f)", it.Emoji.Name, bg.Name, bgs[got].Name, share)
			}
		}
		v := RandomView(r, set.Size)
		if got, _ := Background(emoji.Render(it.Glyph, v)); got != v.Background {
			wrong++
		}
	}
	// A shifted, enlarged glyph may touch the border; nearly all must still read right.
	if n := len(set.Train) / 7; wrong > n/50 {
		t.Errorf("%d of %d augmented views read with the wrong background", wrong, n)
	}
	for i, it := range set.HeldOut {
		for _, jitter := range []float64{0, 1} {
			for _, img := range ConceptViews(it.Glyph, 5, uint64(i), jitter) {
				if got, _ := Background(img); bgs[got].Name == "red" {
					t.Errorf("%s, jitter %g: a training view reads red", it.Emoji.Name, jitter)
				}
			}
		}
	}
}

// TestConceptViewsJitter: without jitter each view is the emoji as the
// data set draws it (centred, full size) on its background, every second
// one mirrored; with jitter the views move off that.
func TestConceptViewsJitter(t *testing.T) {
	set := testSet(t)
	bgs := emoji.Backgrounds()
	for i, it := range set.HeldOut {
		plain := ConceptViews(it.Glyph, 5, uint64(i), 0)
		if len(plain) != 5 {
			t.Fatalf("%d views, want 5", len(plain))
		}
		moved := 0
		for j, img := range ConceptViews(it.Glyph, 5, uint64(i), 1) {
			if maxDiff(img, plain[j], false) > 8 {
				moved++
			}
		}
		if moved < 4 {
			t.Errorf("%s: %d of 5 jittered views differ from the plain ones, want at least 4", it.Emoji.Name, moved)
		}
		for j, img := range plain {
			want := emoji.Composite(it.Glyph, bgs[BackgroundIndex(viewBackgrounds[j])].Color)
			if d := maxDiff(img, want, j%2 == 1); d > 2 {
				t.Fatalf("%s view %d: %d from the data set's rendering (mirrored: %v), want at most 2", it.Emoji.Name, j, d, j%2 == 1)
			}
		}
	}
}

// maxDiff is the largest byte difference of two images of one size, b
// read mirrored left-right when mirror is set.
func maxDiff(a, b *image.RGBA, mirror bool) int {
	w, h := a.Bounds().Dx(), a.Bounds().Dy()
	d := 0
	for y := range h {
		for x := range w {
			bx := x
			if mirror {
				bx = w - 1 - x
			}
			for c := range 4 {
				d = max(d, abs(int(a.Pix[a.PixOffset(x, y)+c])-int(b.Pix[b.PixOffset(bx, y)+c])))
			}
		}
	}
	return d
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestRenderIdentity(t *testing.T) {
	set := testSet(t)
	it := set.Train[0]
	red := emoji.Backgrounds()[BackgroundIndex("red")]
	want, got := emoji.Composite(it.Glyph, red.Color), emoji.Render(it.Glyph, emoji.View{Background: BackgroundIndex("red"), Scale: 1})
	if d := maxDiff(got, want, false); d > 2 {
		t.Fatalf("Render differs from Composite by %d in a byte, want at most 2", d)
	}
}

func TestHeldInCaptions(t *testing.T) {
	set := testSet(t)
	caps := HeldInCaptions(set, MinCaptions, MinSubgroups, 1, false)
	again := HeldInCaptions(set, MinCaptions, MinSubgroups, 1, false)
	seen, subs := map[string]bool{}, map[int]bool{}
	for i, c := range caps {
		if c.Text != again[i].Text || c.Subgroup != again[i].Subgroup {
			t.Fatalf("not deterministic: %q, then %q", c.Text, again[i].Text)
		}
		if seen[c.Text] {
			t.Errorf("caption %q twice", c.Text)
		}
		seen[c.Text] = true
		subs[c.Subgroup] = true
		if !strings.HasPrefix(c.Text, emoji.Words(c.Emoji.Name)) {
			t.Errorf("caption %q does not start with its emoji's name %q", c.Text, c.Emoji.Name)
		}
	}
	// Each subgroup with several captions gets more than one variant: a
	// subgroup's accuracy must not hang on one caption template.
	variants := map[int]map[string]bool{}
	for _, c := range caps {
		if variants[c.Subgroup] == nil {
			variants[c.Subgroup] = map[string]bool{}
		}
		variants[c.Subgroup][captionShape(c)] = true
	}
	for g, v := range variants {
		if n := countSubgroup(caps, g); n > 1 && len(v) < 2 {
			t.Errorf("subgroup %d: %d captions, all of one variant", g, n)
		}
	}
	if len(caps) != MinCaptions || len(subs) != MinSubgroups {
		t.Errorf("%d captions over %d subgroups, want %d over %d", len(caps), len(subs), MinCaptions, MinSubgroups)
	}
	// Only the largest subgroups are drawn from.
	classes, index := set.Subgroups()
	count := make([]int, len(classes))
	for _, k := range index {
		count[k]++
	}
	smallest := len(index)
	for k := range subs {
		smallest = min(smallest, count[k])
	}
	for k, n := range count {
		if !subs[k] && n > smallest {
			t.Errorf("subgroup %s (%d emoji) left out while one of %d emoji is in", classes[k], n, smallest)
		}
	}
	for _, c := range HeldInCaptions(set, MinRedPrompts, 0, 1, true) {
		if !strings.HasSuffix(c.Text, " on a red background") || seen[c.Text] {
			t.Errorf("red caption %q", c.Text)
		}
	}
}

// TestClassifierLearns trains the classifier briefly on a tenth of the
// emoji: on those emoji, as rendered, it must beat chance many times over.
func TestArgmaxAmong(t *testing.T) {
	v := []float32{5, 1, 3, 4}
	if got := argmaxAmong(v, nil); got != 0 {
		t.Errorf("all classes: %d, want 0", got)
	}
	if got := argmaxAmong(v, []int{1, 2, 3}); got != 3 {
		t.Errorf("among 1..3: %d, want 3", got)
	}
	if got := argmaxAmong(v, []int{2, 1}); got != 2 {
		t.Errorf("among 2, 1: %d, want 2", got)
	}
}

func TestClassifierLearns(t *testing.T) {
	set := testSet(t)
	e := ops.CPU()
	o := ClassifierOptions{Steps: 200, Batch: 32, Every: 10, Seed: 1}
	start := time.Now()
	c, err := TrainClassifier(context.Background(), e, set, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, items := trainingItems(set, o.Every)
	var in [][]float32
	for i, it := range items {
		in = append(in, Input(emoji.Composite(it.item.Glyph, emoji.Backgrounds()[i%6].Color)))
	}
	got, feats, err := c.Predict(e, in)
	if err != nil {
		t.Fatal(err)
	}
	correct := 0
	for i, it := range items {
		if got[i] == it.class {
			correct++
		}
	}
	acc, chance := float64(correct)/float64(len(items)), 1/float64(len(c.Classes))
	t.Logf("%d emoji, %d classes: accuracy %.2f (chance %.3f), %v", len(items), len(c.Classes), acc, chance, time.Since(start))
	if acc < 10*chance {
		t.Errorf("accuracy %.3f, want at least 10x chance (%.3f)", acc, 10*chance)
	}
	if len(feats[0]) != FeatureWidth {
		t.Errorf("features of %d values, want %d", len(feats[0]), FeatureWidth)
	}

	// The cache gives the same classifier back, and refuses other data.
	dir := t.TempDir()
	key := classifierKey(set, o)
	path := filepath.Join(dir, "c.bin")
	if err := saveClassifier(path, key, c); err != nil {
		t.Fatal(err)
	}
	c2, err := loadClassifier(path, key)
	if err != nil {
		t.Fatal(err)
	}
	got2, _, err := c2.Predict(e, in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != got2[i] {
			t.Fatalf("image %d: %d before saving, %d after loading", i, got[i], got2[i])
		}
	}
	if _, err := loadClassifier(path, classifierKey(set, ClassifierOptions{Steps: 201, Batch: 32, Every: 10, Seed: 1})); err != errStale {
		t.Errorf("other settings: %v, want errStale", err)
	}
	raw, _ := os.ReadFile(path)
	if err := os.WriteFile(path, raw[:len(raw)-4], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadClassifier(path, key); err == nil {
		t.Error("truncated cache file: no error")
	}
}

func TestReportTable(t *testing.T) {
	r := &Report{Model: "m", NativeSize: 64, Sampler: DefaultSampler, Steps: 20, CFG: 7.5, Seed: 1, Subgroups: 99,
		Text: &TextResult{Accuracy: Accuracy{30, 50}, Subgroups: 25, Chance: 0.01,
			Prompts: []PromptResult{{Prompt: "grinning face", Want: "face-smiling", Got: "face-smiling"}}},
		Background: &BackgroundResult{Red: Accuracy{19, 20}},
		Personal: &PersonalResult{Samples: 4, Concepts: []ConceptResult{
			{Name: "cat face", Word: "cat", ConceptDist: 1, WordDist: 2, GapSE: 0.25, Red: Accuracy{4, 4}, TrainTime: 30 * time.Second}}},
	}
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"60% (30/50)", ">= 50%", "95% (19/20)", "1/1 concepts", ">= 5 concepts", "FAIL", "pass", "cat face", "-1.0 ± 0.2", "Overall: FAIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if r.Passed() {
		t.Error("one concept of the five required: passed")
	}
}

func TestClassifierCancel(t *testing.T) {
	set := testSet(t)
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	_, err := TrainClassifier(ctx, ops.CPU(), set, ClassifierOptions{Steps: 100, Batch: 4, Seed: 1}, func(step, total int, loss float64) {
		if steps = step; step == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || steps != 2 {
		t.Errorf("cancelled after step 2: %v after %d steps", err, steps)
	}
	if _, err := Run(context.Background(), nil, Options{}); err == nil {
		t.Error("no model: no error")
	}
}

// captionShape tells a caption's variant from its text (see
// emoji.Caption): the parts after the emoji's name, with the words
// replaced by their kind.
func captionShape(c Caption) string {
	rest := strings.TrimPrefix(c.Text, emoji.Words(c.Emoji.Name))
	switch {
	case strings.HasPrefix(rest, " on a "):
		return "name on background"
	case strings.HasPrefix(rest, ", "+emoji.Words(c.Emoji.Subgroup)+", on a "):
		return "name, subgroup, background"
	case rest == ", "+emoji.Words(c.Emoji.Subgroup):
		return "name, subgroup"
	}
	return "name, keywords, group, background"
}

// countSubgroup counts the captions of subgroup g.
func countSubgroup(caps []Caption, g int) int {
	n := 0
	for _, c := range caps {
		if c.Subgroup == g {
			n++
		}
	}
	return n
}

// The tuning set is every held-out emoji outside the evaluation set, so
// tuning on it leaves the evaluation set unseen.
func TestTuningConcepts(t *testing.T) {
	all, eval, tune := HeldOutNames(), EvalConcepts(), TuningConcepts()
	if len(eval) != MinConcepts || len(tune)+len(eval) != len(all) {
		t.Fatalf("%d evaluation and %d tuning concepts of %d held-out emoji", len(eval), len(tune), len(all))
	}
	for _, n := range eval {
		if !slices.Contains(all, n) || slices.Contains(tune, n) {
			t.Errorf("evaluation concept %q: held out %v, in the tuning set %v", n, slices.Contains(all, n), slices.Contains(tune, n))
		}
	}
	for _, n := range tune {
		if !slices.Contains(all, n) {
			t.Errorf("tuning concept %q is not held out", n)
		}
	}
}

// TestPairedSE checks the paired standard error against a hand count:
// differences 1, 2, 3 have standard deviation 1, so the error is 1/√3;
// a constant shift has none.
func TestPairedSE(t *testing.T) {
	if got, want := pairedSE([]float64{3, 5, 7}, []float64{2, 3, 4}), 1/math.Sqrt(3); math.Abs(got-want) > 1e-12 {
		t.Errorf("pairedSE = %v, want %v", got, want)
	}
	if got := pairedSE([]float64{4, 9, 1}, []float64{3, 8, 0}); got != 0 {
		t.Errorf("constant difference: pairedSE = %v, want 0", got)
	}
	if got := pairedSE([]float64{1}, []float64{2}); got != 0 {
		t.Errorf("one pair: pairedSE = %v, want 0", got)
	}
	if got := mean([]float64{1, 2, 6}); got != 3 {
		t.Errorf("mean = %v, want 3", got)
	}
}
