package evaldefault

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/perfusion-studio/perfusion/assets/internal/train"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// InputSize is the classifier's input side in pixels: images are
// box-filtered down to it (64 -> 32).
const InputSize = 32

// FeatureWidth is the width of the classifier's penultimate layer, the
// features personalization distances are measured in.
const FeatureWidth = 128

// layer is one convolution or linear layer of the classifier.
type layer struct {
	name   string
	w, b   tensor.Tensor
	stride int // convolutions only
}

// Classifier is a small CNN over InputSize x InputSize RGB images in
// [-1, 1] that predicts the emoji subgroup:
//
//	conv 3x3 3->16, SiLU            [B, 16, 32, 32]
//	conv 3x3/2 16->32, SiLU         [B, 32, 16, 16]
//	conv 3x3/2 32->64, SiLU         [B, 64, 8, 8]
//	conv 3x3/2 64->64, SiLU         [B, 64, 4, 4]
//	linear 1024->128, SiLU          [B, 128]   (the features)
//	linear 128->K                   [B, K]     (subgroup logits)
type Classifier struct {
	Classes []string // subgroup names, in emoji.Set.Subgroups order
	convs   []layer
	fc, out layer
}

// convSpec lists the convolutions: in, out channels and stride.
var convSpec = [][3]int{{3, 16, 1}, {16, 32, 2}, {32, 64, 2}, {64, 64, 2}}

// newClassifier returns a classifier over the classes with He-initialised
// weights drawn from seed.
func newClassifier(classes []string, seed uint64) (*Classifier, error) {
	if len(classes) < 2 {
		return nil, fmt.Errorf("evaldefault: a classifier needs 2 or more classes, got %d", len(classes))
	}
	r := rand.New(rand.NewPCG(seed, 0x636c6173))
	param := func(name string, fanIn int, shape ...int) (layer, error) {
		w := make([]float32, tensor.Numel(shape))
		bound := math.Sqrt(6 / float64(fanIn)) // He uniform, for SiLU
		for i := range w {
			w[i] = float32((2*r.Float64() - 1) * bound)
		}
		wt, err := tensor.NewParam(w, shape...)
		if err != nil {
			return layer{}, err
		}
		bt, err := tensor.NewParam(make([]float32, shape[0]), shape[0])
		return layer{name: name, w: wt, b: bt}, err
	}
	c := &Classifier{Classes: append([]string(nil), classes...)}
	side := InputSize
	for i, s := range convSpec {
		l, err := param(fmt.Sprintf("conv%d", i), s[0]*9, s[1], s[0], 3, 3)
		if err != nil {
			return nil, err
		}
		l.stride = s[2]
		side /= s[2]
		c.convs = append(c.convs, l)
	}
	flat := convSpec[len(convSpec)-1][1] * side * side
	var err error
	if c.fc, err = param("fc", flat, FeatureWidth, flat); err != nil {
		return nil, err
	}
	if c.out, err = param("out", FeatureWidth, len(classes), FeatureWidth); err != nil {
		return nil, err
	}
	return c, nil
}

// layers lists every layer in order.
func (c *Classifier) layers() []*layer {
	out := make([]*layer, 0, len(c.convs)+2)
	for i := range c.convs {
		out = append(out, &c.convs[i])
	}
	return append(out, &c.fc, &c.out)
}

// params lists the trainable tensors for AdamW.
func (c *Classifier) params() []train.Param {
	var out []train.Param
	for _, l := range c.layers() {
		out = append(out, train.Param{Name: l.name + ".weight", T: l.w}, train.Param{Name: l.name + ".bias", T: l.b})
	}
	return out
}

// forward runs x [B, 3, S, S] to the features [B, F] and logits [B, K];
// grad builds the autograd graph, otherwise the weights are read as
// constants.
func (c *Classifier) forward(e *ops.Engine, x tensor.Tensor, grad bool) (feat, logits tensor.Tensor, err error) {
	wb := func(l *layer) (tensor.Tensor, tensor.Tensor) {
		if grad {
			return l.w, l.b
		}
		return l.w.Detach(), l.b.Detach()
	}
	h := x
	for i := range c.convs {
		w, b := wb(&c.convs[i])
		if h, err = e.Conv2D(h, w, b, ops.Conv2DParams{Stride: c.convs[i].stride, Pad: ops.Pad(1)}); err != nil {
			return feat, logits, fmt.Errorf("evaldefault: classifier conv %d: %w", i, err)
		}
		if h, err = e.SiLU(h); err != nil {
			return feat, logits, err
		}
	}
	if h, err = h.Reshape(h.Dim(0), h.Size()/h.Dim(0)); err != nil { // [B, 1024]
		return feat, logits, err
	}
	w, b := wb(&c.fc)
	if h, err = e.Linear(h, w, b); err != nil {
		return feat, logits, fmt.Errorf("evaldefault: classifier fc: %w", err)
	}
	if feat, err = e.SiLU(h); err != nil { // [B, F]
		return feat, logits, err
	}
	w, b = wb(&c.out)
	if logits, err = e.Linear(feat, w, b); err != nil { // [B, K]
		return feat, logits, fmt.Errorf("evaldefault: classifier out: %w", err)
	}
	return feat, logits, nil
}

// Batch limits one inference pass.
const inferBatch = 256

// Predict returns the most likely class of each input [3, S, S] (as
// Input makes them) and its penultimate features [FeatureWidth].
func (c *Classifier) Predict(e *ops.Engine, inputs [][]float32) (classes []int, feats [][]float32, err error) {
	return c.PredictAmong(e, inputs, nil)
}

// PredictAmong is Predict with the answer restricted to the classes in
// among (all classes when among is empty): a classification into the
// evaluated subgroups only, whose chance level is 1/len(among).
func (c *Classifier) PredictAmong(e *ops.Engine, inputs [][]float32, among []int) (classes []int, feats [][]float32, err error) {
	n := InputSize * InputSize * 3
	for i0 := 0; i0 < len(inputs); i0 += inferBatch {
		part := inputs[i0:min(len(inputs), i0+inferBatch)]
		buf := make([]float32, 0, len(part)*n)
		for _, in := range part {
			if len(in) != n {
				return nil, nil, fmt.Errorf("evaldefault: classifier input of %d values, want %d", len(in), n)
			}
			buf = append(buf, in...)
		}
		x, err := tensor.New(buf, len(part), 3, InputSize, InputSize)
		if err != nil {
			return nil, nil, err
		}
		f, z, err := c.forward(e, x, false)
		if err != nil {
			return nil, nil, err
		}
		k, fd, zd := len(c.Classes), f.Data(), z.Data()
		for b := range part {
			classes = append(classes, argmaxAmong(zd[b*k:(b+1)*k], among))
			feats = append(feats, append([]float32(nil), fd[b*FeatureWidth:(b+1)*FeatureWidth]...))
		}
	}
	return classes, feats, nil
}

// argmaxAmong is the index of the largest of v's entries at among (all of
// v when among is empty).
func argmaxAmong(v []float32, among []int) int {
	if len(among) == 0 {
		return argmax(v)
	}
	best := among[0]
	for _, i := range among {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
