package evaldefault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/assets/internal/train"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// ClassifierOptions are the classifier's training settings.
type ClassifierOptions struct {
	Steps int     // AdamW steps (0: 1500)
	Batch int     // images per step (0: 64)
	LR    float64 // peak learning rate (0: 3e-3), cosine decay
	Seed  uint64  // weights, batches and augmentation
	// Every limits the training emoji to every n-th one (0 or 1: all), for
	// quick tests.
	Every int
}

func (o ClassifierOptions) withDefaults() ClassifierOptions {
	if o.Steps <= 0 {
		o.Steps = 1500
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.LR <= 0 {
		o.LR = 3e-3
	}
	if o.Every <= 0 {
		o.Every = 1
	}
	return o
}

// labelled is one training emoji and its subgroup index.
type labelled struct {
	item  emoji.Item
	class int
}

// trainingItems lists the set's training emoji (every n-th) and labels.
func trainingItems(set *emoji.Set, every int) (classes []string, items []labelled) {
	classes, index := set.Subgroups()
	for i, it := range set.Train {
		if i%every == 0 {
			items = append(items, labelled{it, index[i]})
		}
	}
	return classes, items
}

// RandomView draws an augmentation of a data-set image of side size: any
// background, a shift of up to emoji.MaxShift, a scale of 0.85 to 1.1
// and a mirror half of the time.
func RandomView(r *rand.Rand, size int) emoji.View {
	shift := emoji.MaxShift(float64(size))
	return emoji.View{
		Background: r.IntN(len(emoji.Backgrounds())),
		DX:         (2*r.Float64() - 1) * shift, DY: (2*r.Float64() - 1) * shift,
		Scale: 0.85 + 0.25*r.Float64(), Flip: r.IntN(2) == 1,
	}
}

// augmented is the classifier input of item under a random view, with
// Gaussian pixel noise (σ up to 0.08) half of the time: generated images
// are not as clean as the renders.
func augmented(r *rand.Rand, it emoji.Item) []float32 {
	in := Input(emoji.Render(it.Glyph, RandomView(r, it.Glyph.Bounds().Dx())))
	if r.IntN(2) == 0 {
		s := 0.08 * r.Float64()
		for i := range in {
			in[i] += float32(r.NormFloat64() * s)
		}
	}
	return in
}

// TrainClassifier trains a classifier on the set's training emoji under
// random views (RandomView), predicting their subgroup. progress, when
// set, gets the step done, the total and the last loss.
func TrainClassifier(ctx context.Context, e *ops.Engine, set *emoji.Set, o ClassifierOptions, progress func(step, total int, loss float64)) (*Classifier, error) {
	o = o.withDefaults()
	classes, items := trainingItems(set, o.Every)
	c, err := newClassifier(classes, o.Seed)
	if err != nil {
		return nil, err
	}
	params := c.params()
	opt := train.NewAdamW()
	n := 3 * InputSize * InputSize
	for step := range o.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r := rand.New(rand.NewPCG(o.Seed, uint64(step)+1))
		buf := make([]float32, 0, o.Batch*n)
		labels := make([]int, o.Batch)
		for b := range o.Batch {
			it := items[r.IntN(len(items))]
			buf = append(buf, augmented(r, it.item)...)
			labels[b] = it.class
		}
		x, err := tensor.New(buf, o.Batch, 3, InputSize, InputSize)
		if err != nil {
			return nil, err
		}
		_, logits, err := c.forward(e, x, true)
		if err != nil {
			return nil, err
		}
		loss, err := crossEntropy(logits, labels)
		if err != nil {
			return nil, err
		}
		if err := train.Backward(loss); err != nil {
			return nil, fmt.Errorf("evaldefault: classifier step %d: %w", step, err)
		}
		opt.Update(params, train.Schedule(o.LR, step, o.Steps/20, o.Steps))
		if progress != nil {
			progress(step+1, o.Steps, float64(loss.Data()[0]))
		}
	}
	return c, nil
}

// Accuracy is a classifier's accuracy on one image set.
type Accuracy struct {
	Correct, Total int
}

// Share is Correct/Total (0 for none).
func (a Accuracy) Share() float64 {
	if a.Total == 0 {
		return 0
	}
	return float64(a.Correct) / float64(a.Total)
}

// ClassifierCheck is how well the classifier knows the data set's images.
type ClassifierCheck struct {
	Train   Accuracy // training emoji, each on one background (cycled), as rendered
	HeldOut Accuracy // the held-out emoji (never seen) on every background
	Elapsed time.Duration
}

// CheckClassifier measures c on clean renders: every training emoji on one
// background (cycling through them), and the held-out emoji, whose
// subgroups the training emoji share, on all six.
func CheckClassifier(e *ops.Engine, c *Classifier, set *emoji.Set) (ClassifierCheck, error) {
	start := time.Now()
	classes, index := set.Subgroups()
	at := map[string]int{}
	for i, n := range classes {
		at[n] = i
	}
	bgs := emoji.Backgrounds()
	var in [][]float32
	var want []int
	for i, it := range set.Train {
		in = append(in, Input(emoji.Composite(it.Glyph, bgs[i%len(bgs)].Color)))
		want = append(want, index[i])
	}
	nTrain := len(in)
	for _, it := range set.HeldOut {
		k, ok := at[it.Emoji.Subgroup]
		if !ok {
			continue // a subgroup no training emoji has
		}
		for _, bg := range bgs {
			in = append(in, Input(emoji.Composite(it.Glyph, bg.Color)))
			want = append(want, k)
		}
	}
	got, _, err := c.Predict(e, in)
	if err != nil {
		return ClassifierCheck{}, err
	}
	var out ClassifierCheck
	for i := range got {
		a := &out.Train
		if i >= nTrain {
			a = &out.HeldOut
		}
		a.Total++
		if got[i] == want[i] {
			a.Correct++
		}
	}
	out.Elapsed = time.Since(start)
	return out, nil
}
