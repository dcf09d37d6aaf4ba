package train

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/internal/bpe"
	"github.com/perfusion-studio/perfusion/assets/internal/tinysd"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// squares is a synthetic data set: a coloured square on a background.
type squares struct{ size int }

var squareColors = [][3]float32{{1, -1, -1}, {-1, 1, -1}, {-1, -1, 1}, {1, 1, -1}}
var squareNames = []string{"red", "green", "blue", "yellow"}

func (d squares) Len() int         { return 4 }
func (d squares) Backgrounds() int { return 2 }
func (d squares) Variants() int    { return 2 }
func (d squares) Image(i, bg int) []float32 {
	s := d.size
	out := make([]float32, 3*s*s)
	for c := range 3 {
		for y := range s {
			for x := range s {
				v := float32(2*bg - 1) // black or white
				if x >= s/4 && x < 3*s/4 && y >= s/4 && y < 3*s/4 {
					v = squareColors[i][c]
				}
				out[c*s*s+y*s+x] = v
			}
		}
	}
	return out
}
func (d squares) Caption(i, bg, v int) string {
	c := squareNames[i] + " square"
	if v == 1 {
		return c
	}
	return c + " on a " + []string{"black", "white"}[bg] + " background"
}

// tiny is a small model of the default one's family and its tokenizer.
func tiny(t *testing.T) (tinysd.Config, *tokenizer.Tokenizer) {
	t.Helper()
	d := squares{}
	var texts []string
	for i := range d.Len() {
		for bg := range 2 {
			texts = append(texts, d.Caption(i, bg, 0))
		}
	}
	v, err := bpe.Learn(texts, 560, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := v.Write(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tokenizer.Source{Vocab: filepath.Join(dir, bpe.VocabFile), Merges: filepath.Join(dir, bpe.MergesFile)})
	if err != nil {
		t.Fatal(err)
	}
	c := tinysd.Default(len(v.Tokens), 16)
	c.CLIP.HiddenSize, c.CLIP.NumLayers, c.CLIP.NumHeads, c.CLIP.IntermediateSize = 16, 1, 2, 32
	c.UNet.ModelChannels, c.UNet.NormGroups, c.UNet.ContextDim, c.UNet.NumHeads = 8, 4, 16, 2
	c.UNet.ChannelMult, c.UNet.AttentionResolutions = []int{1, 2}, []int{2}
	c.VAE.Ch, c.VAE.NormGroups, c.VAE.ChMult = 8, 4, []int{1, 2}
	return c, tok
}

func tinyOptions() Options {
	o := DefaultOptions()
	o.VAESteps, o.UNetSteps, o.VAEBatch, o.UNetBatch, o.Warmup = 3, 3, 2, 2, 1
	o.CheckpointEvery = 0
	return o
}

func maxDiff(a, b weights.Map) (float64, string) {
	worst, at := 0.0, ""
	for k, t := range a {
		for i, v := range t.Data {
			if d := math.Abs(float64(v) - float64(b[k].Data[i])); d > worst || math.IsNaN(d) {
				worst, at = d, k
			}
		}
	}
	return worst, at
}

// A run stopped after each step and resumed from its checkpoint ends
// where an uninterrupted run ends (up to float rounding: parallel
// reductions may add in another order).
func TestRunResume(t *testing.T) {
	cfg, tok := tiny(t)
	data := squares{size: 16}
	opt := tinyOptions()
	straight, err := Run(context.Background(), cfg, tok, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	if straight.Phase != PhaseDone || straight.ScaleFactor <= 0 || math.IsInf(float64(straight.ScaleFactor), 0) {
		t.Fatalf("phase %q scale %v", straight.Phase, straight.ScaleFactor)
	}
	init, _ := cfg.Init(opt.Seed)
	if d, _ := maxDiff(straight.Weights, init); d == 0 {
		t.Fatal("training changed no weight")
	}
	opt.Checkpoint = filepath.Join(t.TempDir(), "state.safetensors")
	opt.MaxSteps = 1
	calls := 0
	var st *State
	for {
		calls++
		st, err = Run(context.Background(), cfg, tok, data, opt)
		if !errors.Is(err, ErrStopped) {
			break
		}
		if calls > 10 {
			t.Fatal("no end after 10 calls")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if calls != 6 && calls != 7 {
		t.Errorf("%d calls for 3 + 3 steps of one", calls)
	}
	if d, k := maxDiff(straight.Weights, st.Weights); d > 1e-4 {
		t.Errorf("resumed run differs from the straight one by %v (%s)", d, k)
	}
	if straight.ScaleFactor != st.ScaleFactor && math.Abs(float64(straight.ScaleFactor/st.ScaleFactor-1)) > 1e-3 {
		t.Errorf("scale factors %v and %v", straight.ScaleFactor, st.ScaleFactor)
	}
	// A checkpoint of fewer images (another data set, or fewer
	// placements) is refused, and so is one from another seed.
	if _, err := Run(context.Background(), cfg, tok, threeSquares{data}, opt); err == nil || !strings.Contains(err.Error(), "training images") {
		t.Errorf("a checkpoint of 8 images was resumed on 6: %v", err)
	}
	// So is one resumed with other plain steps, and plain steps on more
	// backgrounds than the data has are refused before anything starts.
	opt.PlainSteps, opt.PlainBackgrounds = 2, 1
	if _, err := Run(context.Background(), cfg, tok, data, opt); err == nil || !strings.Contains(err.Error(), "UNet steps on") {
		t.Errorf("a checkpoint without plain steps was resumed with them: %v", err)
	}
	opt.PlainBackgrounds = 3
	if _, err := Run(context.Background(), cfg, tok, data, opt); err == nil || !strings.Contains(err.Error(), "at most all backgrounds") {
		t.Errorf("plain steps on 3 of 2 backgrounds: %v", err)
	}
	opt.PlainSteps, opt.PlainBackgrounds = 0, 0
	opt.Seed++
	if _, err := Run(context.Background(), cfg, tok, data, opt); err == nil {
		t.Error("a checkpoint of another seed was resumed")
	}
}

// The UNet phase's steps before PlainSteps draw only backgrounds below
// PlainBackgrounds; later steps draw what an unrestricted run draws.
func TestPlainSteps(t *testing.T) {
	cfg, tok := tiny(t)
	opt := tinyOptions()
	opt.UNetBatch, opt.CaptionDrop = 8, 0
	r, w := gradRunner(t, cfg, tok, opt)
	ae, err := vae.Load(r.e, w, cfg.VAE)
	if err != nil {
		t.Fatal(err)
	}
	draws := func(o Options) [][]int { // backgrounds drawn, by step
		var seen []int
		r.opt, r.data = o, bgRecorder{squares{size: 16}, &seen}
		var out [][]int
		for step := range 6 {
			seen = nil
			if _, err := r.unetInputs(context.Background(), ae, step); err != nil {
				t.Fatal(err)
			}
			out = append(out, seen)
		}
		return out
	}
	all := draws(opt)
	opt.PlainSteps, opt.PlainBackgrounds = 3, 1
	plain := draws(opt)
	ones := 0
	for step := range all {
		if len(all[step]) != opt.UNetBatch || len(plain[step]) != opt.UNetBatch {
			t.Fatalf("step %d: %d and %d captions for a batch of %d", step, len(all[step]), len(plain[step]), opt.UNetBatch)
		}
		for k, bg := range all[step] {
			ones += bg
			switch {
			case step < opt.PlainSteps && plain[step][k] != 0:
				t.Errorf("step %d, sample %d: background %d before the plain steps end", step, k, plain[step][k])
			case step >= opt.PlainSteps && plain[step][k] != bg:
				t.Errorf("step %d, sample %d: background %d, an unrestricted run draws %d", step, k, plain[step][k], bg)
			}
		}
	}
	if ones == 0 {
		t.Error("an unrestricted run drew only background 0: the test cannot tell")
	}
}

// bgRecorder is squares noting the background of every caption asked for.
type bgRecorder struct {
	squares
	seen *[]int
}

func (d bgRecorder) Caption(i, bg, v int) string {
	*d.seen = append(*d.seen, bg)
	return d.squares.Caption(i, bg, v)
}

// threeSquares is squares without the last one.
type threeSquares struct{ squares }

func (threeSquares) Len() int { return 3 }

// Every weight of the VAE, the text encoder and the UNet gets a gradient,
// and the largest entries match central differences of the loss.
func TestWeightGradients(t *testing.T) {
	cfg, tok := tiny(t)
	opt := tinyOptions()
	r, w := gradRunner(t, cfg, tok, opt)
	e := r.e
	ctx := context.Background()

	pv := map[string]tensor.Tensor{}
	mv, err := vae.Load(e, w, cfg.VAE, blocks.LoadOptions{Params: pv})
	if err != nil {
		t.Fatal(err)
	}
	checkModelGrads(t, "vae", pv, func() float64 {
		loss, _, err := vaeLoss(ctx, mv, r.vaeInputs(0), r.opt.KLWeight)
		if err != nil {
			t.Fatal(err)
		}
		return float64(loss.Data()[0])
	}, func() {
		loss, _, err := vaeLoss(ctx, mv, r.vaeInputs(0), r.opt.KLWeight)
		if err != nil {
			t.Fatal(err)
		}
		if err := Backward(loss); err != nil {
			t.Fatal(err)
		}
	})

	pu := map[string]tensor.Tensor{}
	te, err := clip.Load(e, w, cfg.CLIP, blocks.LoadOptions{Params: pu})
	if err != nil {
		t.Fatal(err)
	}
	un, err := unet.Load(e, w, cfg.UNet, blocks.LoadOptions{Params: pu})
	if err != nil {
		t.Fatal(err)
	}
	ae, err := vae.Load(e, w, cfg.VAE)
	if err != nil {
		t.Fatal(err)
	}
	r.opt.CaptionDrop = 0
	loss := func() tensor.Tensor {
		l, err := r.unetLoss(ctx, te, un, ae, 0)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	checkModelGrads(t, "clip+unet", pu, func() float64 { return float64(loss().Data()[0]) }, func() {
		if err := Backward(loss()); err != nil {
			t.Fatal(err)
		}
	})
}

func checkModelGrads(t *testing.T, model string, ps map[string]tensor.Tensor, value func() float64, backward func()) {
	t.Helper()
	backward()
	type entry struct {
		name string
		i    int
		g    float32
	}
	var top []entry
	for k, p := range ps {
		g := p.Grad()
		if g == nil {
			t.Errorf("%s: %s has no gradient", model, k)
			continue
		}
		best := 0
		for i := range g {
			if math.Abs(float64(g[i])) > math.Abs(float64(g[best])) {
				best = i
			}
		}
		top = append(top, entry{k, best, g[best]})
	}
	sort.Slice(top, func(i, j int) bool { return math.Abs(float64(top[i].g)) > math.Abs(float64(top[j].g)) })
	// The weights with the largest gradients: float32 central differences
	// with a step of 1e-2 are good to about 1e-3 there.
	for _, en := range top[:min(8, len(top))] {
		d := ps[en.name].Data()
		orig := d[en.i]
		const h = 1e-2
		d[en.i] = orig + h
		up := value()
		d[en.i] = orig - h
		down := value()
		d[en.i] = orig
		fd := (up - down) / (2 * h)
		if math.Abs(fd-float64(en.g)) > 0.03*math.Abs(fd)+2e-3 {
			t.Errorf("%s: d loss / d %s[%d] = %v, finite difference %v", model, en.name, en.i, en.g, fd)
		}
	}
	for _, p := range ps {
		p.ZeroGrad()
	}
}

// The moving average follows its formula, survives a checkpoint, is what
// Model exports while it exists, and replaces the weights at the end.
func TestEMA(t *testing.T) {
	p, _ := tensor.NewParam([]float32{0, 0}, 2)
	st := &State{Phase: PhaseUNet, Weights: weights.Map{"a": {Data: p.Data(), Shape: []int{2}}, "b": {Data: []float32{7}, Shape: []int{1}}}, Opt: NewAdamW()}
	ps := []Param{{"a", p}}
	want := []float64{0, 0}
	for n := range 30 {
		p.Data()[0], p.Data()[1] = float32(n), float32(-2*n)
		st.UpdateEMA(ps, 0.9)
		d := min(0.9, float64(1+n)/float64(10+n))
		if n == 0 {
			d = 0
		}
		want[0] = d*want[0] + (1-d)*float64(n)
		want[1] = d*want[1] + (1-d)*float64(-2*n)
	}
	for i, v := range st.EMA["a"] {
		if math.Abs(float64(v)-want[i]) > 1e-4*math.Max(1, math.Abs(want[i])) {
			t.Errorf("ema[%d] = %v, want %v", i, v, want[i])
		}
	}
	path := filepath.Join(t.TempDir(), "state.safetensors")
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.EMASeen != 30 || !reflect.DeepEqual(back.EMA, st.EMA) {
		t.Errorf("after a checkpoint: %d updates, %v; want 30, %v", back.EMASeen, back.EMA, st.EMA)
	}
	_, w := st.Model(tinysd.Config{})
	if !reflect.DeepEqual(w["a"].Data, st.EMA["a"]) || w["b"].Data[0] != 7 || p.Data()[0] != 29 {
		t.Errorf("Model gives %v and %v (weights now %v), want the average and the unaveraged b", w["a"].Data, w["b"].Data, p.Data())
	}
	avg := append([]float32(nil), st.EMA["a"]...)
	st.UseEMA()
	if !reflect.DeepEqual(st.Weights["a"].Data, avg) || st.EMA != nil {
		t.Errorf("after UseEMA: weights %v, ema %v", st.Weights["a"].Data, st.EMA)
	}
}

// singleThreaded returns n engines of one thread each.
func singleThreaded(n int) []*ops.Engine {
	var out []*ops.Engine
	for range n {
		c := cpu.NewGo()
		c.SetThreads(1)
		out = append(out, ops.NewEngine(c))
	}
	return out
}

// A VAE step and a UNet step split over two single-threaded replicas give
// the loss and the gradient of the whole batch on one engine (up to float
// rounding) and leave no gradient behind in the second replica.
func TestReplicasGiveTheBatchGradient(t *testing.T) {
	cfg, tok := tiny(t)
	opt := tinyOptions()
	opt.UNetBatch = 4
	r, w := gradRunner(t, cfg, tok, opt)
	e := r.e
	ctx := context.Background()
	ae, err := vae.Load(e, w, cfg.VAE)
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.unetInputs(ctx, ae, 0)
	if err != nil {
		t.Fatal(err)
	}
	one, err := r.loadReplicas([]*ops.Engine{e})
	if err != nil {
		t.Fatal(err)
	}
	lossOne, err := r.unetPass(ctx, one, in)
	if err != nil {
		t.Fatal(err)
	}
	two, err := r.loadReplicas(singleThreaded(2))
	if err != nil {
		t.Fatal(err)
	}
	lossTwo, err := r.unetPass(ctx, two, in)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(lossOne-lossTwo) > 1e-6*math.Abs(lossOne) {
		t.Errorf("loss %v on one engine, %v on two replicas", lossOne, lossTwo)
	}
	sameGrads(t, "clip+unet", one[0].ps, two[0].ps, two[1].ps)

	// The VAE phase's step, the same way.
	vin := r.vaeInputs(0)
	vaePass := func(engines []*ops.Engine) ([]Param, []Param, float64) {
		var ms []*vae.Model
		var ps [][]Param
		for _, e := range engines {
			pm := map[string]tensor.Tensor{}
			m, err := vae.Load(e, w, cfg.VAE, blocks.LoadOptions{Params: pm})
			if err != nil {
				t.Fatal(err)
			}
			ms, ps = append(ms, m), append(ps, params(pm))
		}
		figs, err := shares(vin.b, ps, func(k, lo, hi int, seed float32) ([]float64, error) {
			loss, rec, err := vaeLoss(ctx, ms[k], vin.share(lo, hi), opt.KLWeight)
			if err != nil {
				return nil, err
			}
			return []float64{float64(rec.Data()[0])}, backwardFrom(loss, seed)
		})
		if err != nil {
			t.Fatal(err)
		}
		return ps[0], ps[len(ps)-1], figs[0]
	}
	v1, _, rec1 := vaePass([]*ops.Engine{e})
	v2, v2b, rec2 := vaePass(singleThreaded(2))
	if math.Abs(rec1-rec2) > 1e-6*math.Abs(rec1) {
		t.Errorf("VAE reconstruction loss %v on one engine, %v on two replicas", rec1, rec2)
	}
	sameGrads(t, "vae", v1, v2, v2b)
	// A batch that does not split evenly is refused.
	opt.UNetBatch = 3
	opt.Replicas = singleThreaded(2)
	if _, err := Run(ctx, cfg, tok, squares{size: 16}, opt); err == nil {
		t.Error("a batch of 3 was split over 2 replicas")
	}
}

// sameGrads checks that the parameters b got a's gradients (up to float
// rounding) and that rest kept none.
func sameGrads(t *testing.T, model string, a, b, rest []Param) {
	t.Helper()
	var worst, largest float64
	at := ""
	for i, p := range a {
		g1, g2 := p.T.Grad(), b[i].T.Grad()
		if g1 == nil || g2 == nil {
			t.Fatalf("%s %s: gradient %v on one engine, %v on two replicas", model, p.Name, g1 != nil, g2 != nil)
		}
		for j := range g1 {
			largest = max(largest, math.Abs(float64(g1[j])))
			if d := math.Abs(float64(g1[j]) - float64(g2[j])); d > worst {
				worst, at = d, p.Name
			}
		}
		if g := rest[i].T.Grad(); g != nil {
			t.Fatalf("%s %s: the second replica kept its gradient", model, p.Name)
		}
	}
	if largest == 0 || worst > 1e-5*largest {
		t.Errorf("%s: gradients differ by %v (%s), largest entry %v", model, worst, at, largest)
	}
}

// gradRunner returns a runner on ops.CPU over cfg's initial weights, with
// non-zero starts for the zero-initialised layers so that gradients reach
// every layer.
func gradRunner(t *testing.T, cfg tinysd.Config, tok *tokenizer.Tokenizer, opt Options) (*runner, weights.Map) {
	t.Helper()
	w, err := cfg.Init(opt.Seed)
	if err != nil {
		t.Fatal(err)
	}
	for k, tw := range w {
		for i := range tw.Data {
			if tw.Data[i] == 0 && len(tw.Shape) > 1 {
				tw.Data[i] = float32(0.05 * math.Sin(float64(i+len(k))))
			}
		}
	}
	r := &runner{cfg: cfg, tok: tok, data: squares{size: 16}, opt: opt, e: ops.CPU(),
		st: &State{Seed: opt.Seed, Weights: w, ScaleFactor: 0.7}}
	return r, w
}

// A whole run on two replicas ends where a run on one engine ends: the
// second replica reads the weights each update writes (they share the
// slices), so its later steps' gradients are the batch's too.
func TestRunOnReplicas(t *testing.T) {
	cfg, tok := tiny(t)
	data := squares{size: 16}
	opt := tinyOptions()
	opt.VAEBatch, opt.UNetBatch = 4, 4
	one, err := Run(context.Background(), cfg, tok, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.Replicas = singleThreaded(2)
	two, err := Run(context.Background(), cfg, tok, data, opt)
	if err != nil {
		t.Fatal(err)
	}
	if d, k := maxDiff(one.Weights, two.Weights); d > 1e-4 {
		t.Errorf("two replicas end %v away from one engine (%s)", d, k)
	}
	if one.ScaleFactor != two.ScaleFactor && math.Abs(float64(one.ScaleFactor/two.ScaleFactor-1)) > 1e-3 {
		t.Errorf("scale factors %v and %v", one.ScaleFactor, two.ScaleFactor)
	}
}

// A learning rate that is zero, negative, NaN or 1 and above is refused
// before any work (mkdefault's -unet-lr passes it through).
func TestRunRefusesLearningRates(t *testing.T) {
	cfg, tok := tiny(t)
	for _, lr := range []float64{0, -1e-4, math.NaN(), 1, math.Inf(1)} {
		opt := tinyOptions()
		opt.UNetLR = lr
		if _, err := Run(context.Background(), cfg, tok, squares{size: 16}, opt); err == nil || !strings.Contains(err.Error(), "learning rate") {
			t.Errorf("UNet rate %v: error %v, want one about the learning rates", lr, err)
		}
		opt = tinyOptions()
		opt.VAELR = lr
		if _, err := Run(context.Background(), cfg, tok, squares{size: 16}, opt); err == nil || !strings.Contains(err.Error(), "learning rate") {
			t.Errorf("VAE rate %v: error %v, want one about the learning rates", lr, err)
		}
	}
}
