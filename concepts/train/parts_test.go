package train

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// TestAdamW checks two steps against values worked out by hand from
// torch.optim.AdamW's update (lr 0.1, weight decay 0.01, constant gradient
// 0.5 on p = 1): p = 0.999 − 0.1 = 0.899, then 0.899·0.999 − 0.1 = 0.798101.
func TestAdamW(t *testing.T) {
	s := Settings{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	o := newAdamW(s, []int{1, 2})
	p := [][]float32{{1}, {1, -2}}
	g := [][]float32{{0.5}, {0.5, 0}}
	want := []float64{0.899, 0.798101}
	for step, w := range want {
		if err := o.step(p, g, []float64{0.1, 0.1}); err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(p[0][0])-w) > 1e-6 || p[1][0] != p[0][0] {
			t.Errorf("step %d: p = %v, want %g", step+1, p, w)
		}
	}
	// A zero gradient leaves only the decay: -2·0.999².
	if want := -2 * 0.999 * 0.999; math.Abs(float64(p[1][1])-want) > 1e-6 {
		t.Errorf("decay only: %g, want %g", p[1][1], want)
	}
	// Non-finite gradients are refused and change nothing.
	before := slices.Clone(p[0])
	if err := o.step(p, [][]float32{{float32(math.NaN())}, {0, 0}}, []float64{0.1, 0.1}); err == nil || p[0][0] != before[0] || o.t != 2 {
		t.Errorf("NaN gradient: err %v, p %v, t %d", err, p, o.t)
	}
	if err := o.step(p[:1], g[:1], []float64{0.1}); err == nil {
		t.Error("wrong parameter count: no error")
	}
	// Resume: exported state continues identically.
	o2 := newAdamW(s, []int{1, 2})
	if err := o2.load(o.export()); err != nil {
		t.Fatal(err)
	}
	p2 := [][]float32{slices.Clone(p[0]), slices.Clone(p[1])}
	o.step(p, g, []float64{0.1, 0.1})
	o2.step(p2, g, []float64{0.1, 0.1})
	if !slices.Equal(p[0], p2[0]) || !slices.Equal(p[1], p2[1]) {
		t.Errorf("resumed optimizer differs: %v vs %v", p, p2)
	}
}

func TestWeightedMSE(t *testing.T) {
	pv := []float32{1, 2, -1, 0.5}
	target := []float32{0, 2, 1, 0}
	w := []float32{1, 0.5, 0.25, 2}
	pred, _ := tensor.NewParam(slices.Clone(pv), 4)
	l, err := weightedMSE(pred, target, w, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	want := 0.5 * (1*1 + 0 + 0.25*4 + 2*0.25) / 4
	if math.Abs(float64(l.Data()[0])-want) > 1e-7 {
		t.Errorf("loss %g, want %g", l.Data()[0], want)
	}
	tensor.AccGrad(l.Node(), []float32{1})
	if err := ag.Backward(l.Node()); err != nil {
		t.Fatal(err)
	}
	g := pred.Grad()
	for i := range pv {
		d := float64(pv[i]) - float64(target[i])
		if wg := 0.5 * 2 * float64(w[i]) * d / 4; math.Abs(float64(g[i])-wg) > 1e-7 {
			t.Errorf("grad[%d] %g, want %g", i, g[i], wg)
		}
	}
	plain, _ := weightedMSE(tensor.MustNew(pv, 4), target, nil, 1)
	if want := (1 + 0 + 4 + 0.25) / 4.0; math.Abs(float64(plain.Data()[0])-want) > 1e-7 {
		t.Errorf("unweighted %g, want %g", plain.Data()[0], want)
	}
	if _, err := weightedMSE(pred, target[:3], nil, 1); err == nil {
		t.Error("short target: no error")
	}
}

func goldenTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(tokenizer.Source{BPE: golden.Path(t, "bpe_simple_vocab_16e6.txt.gz")})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTemplatesAndWords(t *testing.T) {
	tok := goldenTokenizer(t)
	const word = 49408
	for _, tpl := range append(slices.Clone(Templates), WordFirstTemplates()...) {
		pr, err := tokenizeTemplate(tok, tpl, word)
		if err != nil {
			t.Fatal(err)
		}
		if len(pr.ids) != tokenizer.ContextLen || pr.ids[0] != tok.BOS() || pr.ids[pr.pos] != word {
			t.Fatalf("%q: %v at %d", tpl, pr.ids[:10], pr.pos)
		}
		// The same layout as the tokenizer gives the template with a real
		// one-token word in place.
		want := tok.IDs77(strings.Replace(tpl, "{}", "cat", 1))
		pc, _ := tokenizeTemplate(tok, tpl, want[pr.pos])
		if !slices.Equal(pc.ids, want) {
			t.Errorf("%q: %v, tokenizer %v", tpl, pc.ids[:10], want[:10])
		}
	}
	if _, err := tokenizeTemplate(tok, "no slot", word); err == nil {
		t.Error("template without {}: no error")
	}

	id, err := SuperclassToken(tok, " Teddy ")
	if err != nil || tok.Token(id) != "teddy</w>" {
		t.Errorf("teddy: %d %q %v", id, tok.Token(id), err)
	}
	for _, bad := range []string{"teddy bear", "", "xyzzyplugh"} {
		_, err := SuperclassToken(tok, bad)
		if err == nil {
			t.Errorf("%q: no error", bad)
			continue
		}
		t.Log(err)
	}
	_, err = SuperclassToken(tok, "teddy bear")
	if err == nil || !strings.Contains(err.Error(), "bear") || !strings.Contains(err.Error(), "teddy") {
		t.Errorf("teddy bear: %v (want its words suggested)", err)
	}
	for _, s := range Suggest(tok, "xyzzyplugh") {
		if ids := tok.Encode(s); len(ids) != 1 {
			t.Errorf("suggestion %q is %d tokens", s, len(ids))
		}
	}
}

func TestPresets(t *testing.T) {
	q, err := PresetSettings(Quick)
	if err != nil || q.Size != 256 || q.Samples() < 200 || q.Samples() > 1000 || q.Check(64) != nil {
		t.Errorf("quick: %+v %v", q, err)
	}
	pp, err := PresetSettings(Paper)
	if err != nil || pp.Size != 512 || pp.Steps != 400 || pp.Batch != 16 || pp.Check(64) != nil {
		t.Errorf("paper: %+v %v", pp, err)
	}
	// A small model trains at its own size; SD1.x's sizes are unchanged.
	for _, c := range []struct {
		name         string
		native, want int
	}{{Quick, 32, 32}, {Quick, 64, 64}, {Paper, 64, 64}, {Quick, 384, 256}, {Paper, 384, 384}, {Quick, 512, 256}, {Paper, 512, 512}, {Paper, 768, 512}, {Quick, 0, 256}, {Paper, 0, 512}} {
		s, err := PresetFor(c.name, c.native)
		if err != nil || s.Size != c.want || s.Preset != c.name {
			t.Errorf("PresetFor(%s, %d): size %d (%v), want %d", c.name, c.native, s.Size, err, c.want)
		}
		ref, _ := PresetSettings(c.name)
		if s.Steps != ref.Steps || s.Batch != ref.Batch || s.Micro != ref.Micro {
			t.Errorf("PresetFor(%s, %d) changed steps or batches: %+v", c.name, c.native, s)
		}
		// A small model trains on the bare word, SD1.x on the photo templates.
		want := Templates
		if c.native > 0 && c.native < SmallModelSide {
			want = []string{"{}"}
		}
		if got := s.TrainingTemplates(); !slices.Equal(got, want) {
			t.Errorf("PresetFor(%s, %d): templates %q, want %q", c.name, c.native, got, want)
		}
	}
	if s, _ := PresetFor(Quick, 32); s.Steps != 150 || s.Batch != 2 || s.LREmbedding != 0.006 || s.LRValues != 0.03 || s.GateBeta != 0.75 || s.GateTau != 0.1 {
		t.Errorf("PresetFor(quick, 32): %+v, want 150 steps, batch 2, LR 0.006/0.03, gate 0.75/0.1", s)
	}
	if q.Templates != nil {
		t.Errorf("SD1.x's quick preset: templates %q, want nil (Templates)", q.Templates)
	}
	if _, err := PresetFor("slow", 64); err == nil {
		t.Error("PresetFor: unknown preset: no error")
	}
	if _, err := PresetSettings("slow"); err == nil {
		t.Error("unknown preset: no error")
	}
	bad := q
	bad.Micro = 3
	if bad.Check(64) == nil {
		t.Error("micro not dividing batch: no error")
	}
	bad = q
	bad.Size = 300
	if err := bad.Check(64); err == nil || !strings.Contains(err.Error(), "256") {
		t.Errorf("size 300: %v", err)
	}
}
