package evaldefault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/photos"
	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
)

// ConceptResult is the personalization figure of one held-out emoji.
type ConceptResult struct {
	Name    string // the emoji's name ("cat face")
	Concept string // the concept's name in prompts, without <>
	Word    string // its superordinate word
	Views   int
	// ConceptDist and WordDist are the mean feature distances of the
	// "<concept>" and "<word>" generations to the emoji's rendering on the
	// background each generation shows.
	ConceptDist, WordDist float64
	// GapSE is the standard error of ConceptDist − WordDist, from the
	// differences of the images pair by pair: image i of both prompts
	// starts from the same noise. A gap within about two of it is a draw
	// of the samples as much as a property of the concept (0: one image).
	GapSE       float64
	Red         Accuracy      // "<concept> on a red background" images with a red background
	TrainTime   time.Duration // train.Run, self-check included
	Steps, Size int           // the preset's optimizer steps and image side
	Note        string        // the self-check's complaint, if any
}

// Closer reports whether <concept> generations are nearer the emoji than
// the word's.
func (c ConceptResult) Closer() bool { return c.ConceptDist < c.WordDist }

// PersonalResult is the personalization figure.
type PersonalResult struct {
	Concepts []ConceptResult
	Samples  int     // generations per prompt
	Jitter   float64 // the views' geometric augmentation (ConceptViews)
}

// viewBackgrounds are the backgrounds of the training views, in order:
// never red, so "<concept> on a red background" is a real test.
var viewBackgrounds = []string{"white", "blue", "green", "yellow", "black"}

// ConceptViews returns n augmented views (n <= 5) of a held-out emoji:
// each on another background (viewBackgrounds), every second one
// mirrored. jitter (0 to 1) adds the geometric augmentation: a shift of
// up to jitter × emoji.MaxShift and a scale down to 1 − jitter × 0.15.
// The evaluation uses 1 (0 with Options.CentredViews). The default model
// was trained on emoji centred at one size only, so it cannot draw a
// moved or shrunk view (assets/README.md, "Views").
func ConceptViews(glyph *image.NRGBA, n int, seed uint64, jitter float64) []*image.RGBA {
	r := rand.New(rand.NewPCG(seed, 0x76696577))
	shift := emoji.MaxShift(float64(glyph.Bounds().Dx()))
	var out []*image.RGBA
	for i := range min(n, len(viewBackgrounds)) {
		// the same draws whatever the jitter
		dx, dy, sc := 2*r.Float64()-1, 2*r.Float64()-1, r.Float64()
		v := emoji.View{
			Background: BackgroundIndex(viewBackgrounds[i]),
			DX:         jitter * dx * shift, DY: jitter * dy * shift,
			Scale: 1 - jitter*0.15*(1-sc), Flip: i%2 == 1,
		}
		out = append(out, emoji.Render(glyph, v))
	}
	return out
}

// viewJitter is ConceptViews's jitter under o.
func (o Options) viewJitter() float64 {
	if o.CentredViews {
		return 0
	}
	return 1
}

// conceptName turns an emoji name into a concept name ("cat face" ->
// "cat-face").
func conceptName(name string) string {
	return strings.Join(strings.Fields(emoji.Words(name)), "-")
}

// heldOut finds a held-out emoji of the set by name.
func heldOut(set *emoji.Set, name string) (emoji.Item, emoji.Concept, error) {
	for i, c := range emoji.HeldOut() {
		if c.Name == name && i < len(set.HeldOut) {
			return set.HeldOut[i], c, nil
		}
	}
	return emoji.Item{}, emoji.Concept{}, fmt.Errorf("evaldefault: %q is not a held-out emoji (see emoji.HeldOut)", name)
}

// personal trains and measures each concept.
func (ev *evaluator) personal(ctx context.Context) (*PersonalResult, error) {
	cv, _, err := concepts.Covariance(ctx, ev.p, nil, filepath.Join(ev.work, "covariance"), func(c covariance.Progress) {
		ev.progress(StageConcept, 0, len(ev.o.Concepts), fmt.Sprintf("text covariance %d/%d", c.Done, c.Total))
	})
	if err != nil {
		return nil, err
	}
	base, err := concepts.BaseHash(ctx, ev.p.Path)
	if err != nil {
		return nil, err
	}
	res := &PersonalResult{Samples: ev.o.Samples, Jitter: ev.o.viewJitter()}
	for i, name := range ev.o.Concepts {
		c, err := ev.concept(ctx, name, uint64(i), cv, base)
		if err != nil {
			return nil, fmt.Errorf("evaldefault: concept %s: %w", name, err)
		}
		res.Concepts = append(res.Concepts, c)
		ev.progress(StageConcept, i+1, len(ev.o.Concepts), name)
	}
	return res, nil
}

// concept trains one held-out emoji as a concept and measures it.
func (ev *evaluator) concept(ctx context.Context, name string, k uint64, cv *covariance.Covariance, base string) (ConceptResult, error) {
	item, held, err := heldOut(ev.set, name)
	if err != nil {
		return ConceptResult{}, err
	}
	out := ConceptResult{Name: name, Concept: conceptName(name), Word: held.Word, Views: ev.o.Views}
	dir := filepath.Join(ev.work, "views", out.Concept)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return out, err
	}
	var ph []photos.Photo
	for j, img := range ConceptViews(item.Glyph, ev.o.Views, ev.o.Seed+k, ev.o.viewJitter()) {
		path := filepath.Join(dir, fmt.Sprintf("view%d.png", j))
		if err := writePNG(path, img); err != nil {
			return out, err
		}
		ph = append(ph, photos.Photo{Path: path})
	}
	s, err := train.PresetFor(train.Quick, ev.p.NativeSize())
	if err != nil {
		return out, err
	}
	if ev.o.ConceptSteps > 0 {
		s.Steps = ev.o.ConceptSteps
	}
	s.Seed = ev.o.Seed + k
	out.Steps, out.Size = s.Steps, s.Size
	t0 := time.Now()
	tr, err := train.Run(ctx, train.Job{
		Pipeline: ev.p, Name: out.Concept, Class: held.Word, Photos: ph, Metric: cv, Settings: s,
		Progress: func(p train.Progress) {
			if p.Stage == train.StageTrain && (p.Step%10 == 0 || p.Step == p.Total) {
				ev.progress(StageConcept, int(k), len(ev.o.Concepts), fmt.Sprintf("%s: step %d/%d, loss %.4f", name, p.Step, p.Total, p.Loss))
			}
		},
	})
	out.TrainTime = time.Since(t0)
	if errors.Is(err, train.ErrNotLearned) && tr != nil {
		out.Note = strings.TrimPrefix(err.Error(), train.ErrNotLearned.Error()+": ")
	} else if err != nil {
		return out, err
	}
	f, err := tr.ConceptFile(base, cv.Key, len(ph), item.Glyph)
	if err != nil {
		return out, err
	}
	ec, err := concepts.FromFile(f, ev.p, base)
	if err != nil {
		return out, err
	}
	set, err := concepts.NewSet([]concepts.Use{{Concept: ec, Beta: float64(ec.Beta), Tau: float64(ec.Tau)}}, cv, edit.Options{})
	if err != nil {
		return out, err
	}
	n := ev.o.Samples
	word := concepts.Placeholder(out.Concept)
	seed := ev.o.Seed + 2000 + 10*k
	conc, err := ev.generate(ctx, repeat(word, n), seed, set, StageConcept, out.Concept)
	if err != nil {
		return out, err
	}
	plain, err := ev.generate(ctx, repeat(held.Word, n), seed, nil, StageConcept, out.Concept+"-word")
	if err != nil {
		return out, err
	}
	redPrompt := word + " on a red background"
	red, err := ev.generate(ctx, repeat(redPrompt, n), seed+1, set, StageConcept, out.Concept+"-red")
	if err != nil {
		return out, err
	}
	dc, err := ev.distances(item, conc)
	if err != nil {
		return out, err
	}
	dw, err := ev.distances(item, plain)
	if err != nil {
		return out, err
	}
	out.ConceptDist, out.WordDist = mean(dc), mean(dw)
	out.GapSE = pairedSE(dc, dw)
	out.Red = redShare(repeat(redPrompt, n), red).Red
	return out, nil
}

// distances are the Euclidean distances, in the classifier's features,
// from each image to the emoji rendered on that image's background
// (Background), so the background itself does not count.
func (ev *evaluator) distances(item emoji.Item, imgs []*image.RGBA) ([]float64, error) {
	if len(imgs) == 0 {
		return nil, fmt.Errorf("evaldefault: no images to measure")
	}
	bgs := emoji.Backgrounds()
	in := make([][]float32, 0, 2*len(imgs))
	for _, img := range imgs {
		bg, _ := Background(img)
		in = append(in, Input(img), Input(emoji.Composite(item.Glyph, bgs[bg].Color)))
	}
	_, f, err := ev.clf.Predict(ev.e, in)
	if err != nil {
		return nil, err
	}
	d := make([]float64, 0, len(imgs))
	for i := 0; i < len(f); i += 2 {
		d = append(d, distance(f[i], f[i+1]))
	}
	return d, nil
}

// mean is the mean of x (0 when empty).
func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(max(len(x), 1))
}

// pairedSE is the standard error of mean(a) − mean(b) for pairs a[i],
// b[i]: the sample standard deviation of the differences over √n (0 for
// fewer than two pairs).
func pairedSE(a, b []float64) float64 {
	n := min(len(a), len(b))
	if n < 2 {
		return 0
	}
	d := make([]float64, n)
	for i := range n {
		d[i] = a[i] - b[i]
	}
	m := mean(d)
	var ss float64
	for _, v := range d {
		ss += (v - m) * (v - m)
	}
	return math.Sqrt(ss / float64(n-1) / float64(n))
}

// distance is the Euclidean distance of two feature vectors.
func distance(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// writePNG writes img atomically.
func writePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("evaldefault: %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}
