package clip

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

const ioFile = "tiny_clip_text_io.safetensors"

func tiny(t *testing.T) (*Model, weights.Source) {
	t.Helper()
	src := weights.Safetensors(golden.Open(t, "tiny_clip_text.safetensors"))
	m, err := Load(ops.CPU(), src, goldenConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return m, src
}

// goldenIDs reads input_ids [B, T] as ints.
func goldenIDs(t *testing.T) ([]int, int) {
	t.Helper()
	f := golden.Open(t, ioFile)
	v, shape := golden.Float32(t, f, "input_ids")
	ids := make([]int, len(v))
	for i, x := range v {
		ids[i] = int(x)
	}
	return ids, shape[0]
}

func maxErr(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func TestGolden(t *testing.T) {
	m, _ := tiny(t)
	ids, batch := goldenIDs(t)
	res, err := m.ForwardWith(ids, batch, Options{Hidden: true})
	if err != nil {
		t.Fatal(err)
	}
	f := golden.Open(t, ioFile)
	got := map[string]tensor.Tensor{"last_hidden_state": res.Out, "intermediate.embeddings": res.Hidden[0]}
	for i, h := range res.Hidden[1:] {
		got[fmt.Sprintf("intermediate.encoder.layers.%d", i)] = h
	}
	n := 0
	for _, name := range f.Names() {
		if name == "input_ids" {
			continue
		}
		n++
		want, shape := golden.Float32(t, f, name)
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: not computed", name)
			continue
		}
		if !tensor.SameShape(g.Shape(), shape) {
			t.Errorf("%s: shape %v, want %v", name, g.Shape(), shape)
			continue
		}
		if golden.Check(t, name, g.Data(), want, golden.Tolerance(t, ioFile, name)) {
			t.Logf("%-35s max abs error %.3g", name, maxErr(g.Data(), want))
		}
	}
	if n != len(got) {
		t.Errorf("golden file has %d outputs, model gave %d", n, len(got))
	}
	plain, err := m.Forward(ids, batch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plain.Data(), res.Out.Data()) {
		t.Error("Forward and ForwardWith differ")
	}
}

// Clip skip n returns final_layer_norm(output of layer L-n), checked
// against a float64 LayerNorm of the golden intermediate.
func TestClipSkip(t *testing.T) {
	m, src := tiny(t)
	ids, batch := goldenIDs(t)
	f := golden.Open(t, ioFile)
	c := m.Config
	gamma, _, _ := src.Float32(Prefix + "final_layer_norm.weight")
	beta, _, _ := src.Float32(Prefix + "final_layer_norm.bias")
	for skip := 2; skip <= c.NumLayers; skip++ {
		res, err := m.ForwardWith(ids, batch, Options{ClipSkip: skip, Hidden: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hidden) != c.NumLayers-skip+2 {
			t.Errorf("skip %d ran %d layers, want %d", skip, len(res.Hidden)-1, c.NumLayers-skip+1)
		}
		h, _ := golden.Float32(t, f, fmt.Sprintf("intermediate.encoder.layers.%d", c.NumLayers-skip))
		want := layerNorm64(h, gamma, beta, float64(c.LayerNormEps))
		golden.Check(t, fmt.Sprintf("clip skip %d", skip), res.Out.Data(), want, golden.Tolerance(t, ioFile, "last_hidden_state"))
	}
	if _, err := m.ForwardWith(ids, batch, Options{ClipSkip: c.NumLayers + 1}); err == nil {
		t.Error("clip skip beyond the layers: no error")
	}
}

func layerNorm64(x, g, b []float32, eps float64) []float32 {
	d := len(g)
	out := make([]float32, len(x))
	for r := 0; r < len(x); r += d {
		mean, v := 0.0, 0.0
		for _, a := range x[r : r+d] {
			mean += float64(a)
		}
		mean /= float64(d)
		for _, a := range x[r : r+d] {
			v += (float64(a) - mean) * (float64(a) - mean)
		}
		v /= float64(d)
		for i := range d {
			out[r+i] = float32((float64(x[r+i])-mean)/math.Sqrt(v+eps)*float64(g[i]) + float64(b[i]))
		}
	}
	return out
}

// Extra embeddings: ids >= VocabSize read rows of Options.Extra, and
// gradients reach that table (checked by finite differences). The table
// belongs to one call: the next call without it sees none.
func TestExtraEmbeddings(t *testing.T) {
	m, src := tiny(t)
	ids, _ := goldenIDs(t)
	c := m.Config
	row := ids[:c.MaxPositions] // first prompt
	want, err := m.Forward(row, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Move the tokens at positions 2 and 4 to an extra table holding their rows.
	table, _, _ := src.Float32(Prefix + "embeddings.token_embedding.weight")
	d := c.HiddenSize
	extra := make([]float32, 2*d)
	copy(extra[:d], table[row[2]*d:(row[2]+1)*d])
	copy(extra[d:], table[row[4]*d:(row[4]+1)*d])
	p, err := tensor.NewParam(extra, 2, d)
	if err != nil {
		t.Fatal(err)
	}
	moved := slices.Clone(row)
	moved[2], moved[4] = c.VocabSize, c.VocabSize+1
	res, err := m.ForwardWith(moved, 1, Options{Extra: p})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Out
	if _, err := m.Forward(moved, 1); err == nil {
		t.Error("extra ids in a call without extra embeddings: no error")
	}
	golden.Check(t, "extra embeddings", got.Data(), want.Data(), golden.Tol{Atol: 1e-6})

	// d(sum(out * r))/d(extra) against central differences.
	rng := rand.New(rand.NewPCG(5, 6))
	r := make([]float32, got.Size())
	for i := range r {
		r[i] = float32(rng.NormFloat64())
	}
	tensor.AccGrad(got.Node(), r)
	if err := ag.Backward(got.Node()); err != nil {
		t.Fatal(err)
	}
	grad := slices.Clone(p.Grad())
	if grad == nil {
		t.Fatal("no gradient reached Options.Extra")
	}
	loss := func() float64 {
		out, err := m.ForwardWith(moved, 1, Options{Extra: tensor.MustNew(extra, 2, d)})
		if err != nil {
			t.Fatal(err)
		}
		s := 0.0
		for i, v := range out.Out.Data() {
			s += float64(v) * float64(r[i])
		}
		return s
	}
	const h = 1e-2
	for _, i := range []int{0, 7, d + 3, 2*d - 1} {
		old := extra[i]
		extra[i] = old + h
		up := loss()
		extra[i] = old - h
		down := loss()
		extra[i] = old
		fd := (up - down) / (2 * h)
		if math.Abs(fd-float64(grad[i])) > 2e-2*(1+math.Abs(fd)) {
			t.Errorf("grad[%d] = %g, finite difference %g", i, grad[i], fd)
		}
	}
	moved[3] = c.VocabSize + 2
	if _, err := m.ForwardWith(moved, 1, Options{Extra: p}); err == nil {
		t.Error("id beyond the extra table: no error")
	}
}

func TestStrictLoad(t *testing.T) {
	_, src := tiny(t)
	mp := weights.Map{}
	for _, n := range src.Names() {
		d, s, err := src.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		mp[n] = weights.Tensor{Data: d, Shape: s}
	}
	missing := Prefix + "encoder.layers.1.mlp.fc2.bias"
	reshaped := Prefix + "encoder.layers.0.self_attn.q_proj.weight"
	delete(mp, missing)
	r := mp[reshaped]
	mp[reshaped] = weights.Tensor{Data: r.Data, Shape: []int{r.Shape[0] * r.Shape[1]}}
	_, err := Load(ops.CPU(), mp, goldenConfig(t))
	var le *blocks.LoadError
	if !errors.As(err, &le) || len(le.Problems) != 2 {
		t.Fatalf("want a *blocks.LoadError with 2 problems, got %v", err)
	}
	for _, name := range []string{missing, reshaped} {
		if !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

func TestForwardErrors(t *testing.T) {
	m, _ := tiny(t)
	c := m.Config
	if _, err := m.Forward(make([]int, c.MaxPositions+1), 1); err == nil {
		t.Error("too many tokens: no error")
	}
	if _, err := m.Forward(make([]int, 10), 3); err == nil {
		t.Error("ids not divisible by batch: no error")
	}
	ids := make([]int, c.MaxPositions)
	ids[1] = c.VocabSize
	if _, err := m.Forward(ids, 1); err == nil {
		t.Error("id >= vocab without extra table: no error")
	}
	ids[1] = -1
	if _, err := m.Forward(ids, 1); err == nil {
		t.Error("negative id: no error")
	}
}
