package unet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

const ioFile = "tiny_unet_io.safetensors"

// tiny loads the golden tiny UNet with the config of its JSON file.
func tiny(t *testing.T) *Model {
	t.Helper()
	m, err := Load(ops.CPU(), weights.Safetensors(golden.Open(t, "tiny_unet.safetensors")), goldenConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inputs reads x, timesteps and context of the golden io file.
func inputs(t *testing.T, f *safetensors.File) (x tensor.Tensor, ts []float32, cond tensor.Tensor) {
	t.Helper()
	xd, xs := golden.Float32(t, f, "x")
	ts, _ = golden.Float32(t, f, "timesteps") // I64 -> float32, exact for 0..999
	cd, cs := golden.Float32(t, f, "context")
	return tensor.MustNew(xd, xs...), ts, tensor.MustNew(cd, cs...)
}

// record returns a Tracer keeping a copy of every output.
func record() (blocks.Tracer, map[string]tensor.Tensor) {
	var mu sync.Mutex
	got := map[string]tensor.Tensor{}
	return func(name string, out tensor.Tensor) {
		mu.Lock()
		defer mu.Unlock()
		got[name] = tensor.MustNew(slices.Clone(out.Data()), out.Shape()...)
	}, got
}

func TestGolden(t *testing.T) {
	m := tiny(t)
	f := golden.Open(t, ioFile)
	x, ts, cond := inputs(t, f)
	trace, got := record()
	m.Trace = trace
	eps, err := m.Forward(context.Background(), x, ts, cond)
	if err != nil {
		t.Fatal(err)
	}
	want, shape := golden.Float32(t, f, "eps")
	if !tensor.SameShape(eps.Shape(), shape) {
		t.Fatalf("eps shape %v, want %v", eps.Shape(), shape)
	}
	golden.Check(t, "eps", eps.Data(), want, golden.Tolerance(t, ioFile, "eps"))
	t.Logf("eps max abs error %.3g", maxErr(eps.Data(), want))
	n := 0
	for _, name := range f.Names() {
		key, ok := strings.CutPrefix(name, "intermediate.")
		if !ok {
			continue
		}
		n++
		want, shape := golden.Float32(t, f, name)
		g, ok := got[key]
		if !ok {
			t.Errorf("%s: module output not traced", key)
			continue
		}
		if !tensor.SameShape(g.Shape(), shape) {
			t.Errorf("%s: shape %v, want %v", key, g.Shape(), shape)
			continue
		}
		if golden.Check(t, key, g.Data(), want, golden.Tolerance(t, ioFile, name)) {
			t.Logf("%-60s max abs error %.3g", key, maxErr(g.Data(), want))
		}
	}
	if n == 0 {
		t.Error("no intermediate.* tensors in the golden file")
	}
}

// Without a Tracer the forward pass fuses operators (GroupNorm with SiLU,
// residual adds into to_out, ff.net.2, proj_out and out_layers.3): its eps
// must match the golden one, and the traced (unfused) pass closely.
func TestGoldenUntraced(t *testing.T) {
	m := tiny(t)
	f := golden.Open(t, ioFile)
	x, ts, cond := inputs(t, f)
	eps, err := m.Forward(context.Background(), x, ts, cond)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := golden.Float32(t, f, "eps")
	golden.Check(t, "eps (untraced)", eps.Data(), want, golden.Tolerance(t, ioFile, "eps"))
	m.Trace, _ = record()
	traced, err := m.Forward(context.Background(), x, ts, cond)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxErr(eps.Data(), traced.Data()); d > 1e-5 {
		t.Errorf("untraced and traced eps differ by up to %.3g", d)
	} else {
		t.Logf("untraced vs traced eps: max abs difference %.3g", d)
	}
}

func maxErr(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// editor records calls and optionally scales the V projection.
type editor struct {
	e      *ops.Engine
	scaleV float32 // 0: plain projection
	mu     sync.Mutex
	calls  []string
}

func (ed *editor) Project(layer string, kv KV, ctx, w tensor.Tensor) (tensor.Tensor, error) {
	ed.mu.Lock()
	ed.calls = append(ed.calls, layer+"."+kv.String())
	ed.mu.Unlock()
	y, err := ed.e.Linear(ctx, w, tensor.Tensor{})
	if err != nil || kv != Value || ed.scaleV == 0 {
		return y, err
	}
	return ed.e.Scale(y, ed.scaleV)
}

func TestKVEditor(t *testing.T) {
	m := tiny(t)
	src := weights.Safetensors(golden.Open(t, "tiny_unet.safetensors"))
	f := golden.Open(t, ioFile)
	x, ts, cond := inputs(t, f)
	ctx := context.Background()

	// The layer list is every attn2 of the checkpoint, with its weights.
	var want []string
	for _, n := range src.Names() {
		if l, ok := strings.CutSuffix(strings.TrimPrefix(n, Prefix), ".attn2.to_k.weight"); ok {
			want = append(want, l+".attn2")
		}
	}
	layers := m.CrossAttentions()
	var names []string
	for _, l := range layers {
		names = append(names, l.Name)
		wk, _, _ := src.Float32(Prefix + l.Name + ".to_k.weight")
		wv, _, _ := src.Float32(Prefix + l.Name + ".to_v.weight")
		if !slices.Equal(l.ToK.Data(), wk) || !slices.Equal(l.ToV.Data(), wv) {
			t.Errorf("%s: weights differ from the checkpoint", l.Name)
		}
	}
	sorted := slices.Sorted(slices.Values(names))
	slices.Sort(want)
	if !slices.Equal(sorted, want) {
		t.Fatalf("CrossAttentions = %v\nwant %v", names, want)
	}

	plain, err := m.Forward(ctx, x, ts, cond)
	if err != nil {
		t.Fatal(err)
	}
	id := &editor{e: ops.CPU()}
	same, err := m.Forward(ctx, x, ts, cond, Call{Editor: id})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plain.Data(), same.Data()) {
		t.Errorf("identity editor changed eps (max diff %g)", maxErr(plain.Data(), same.Data()))
	}
	if len(id.calls) != 2*len(layers) {
		t.Errorf("editor called %d times, want %d (K and V of %d layers)", len(id.calls), 2*len(layers), len(layers))
	}
	for i, l := range layers { // forward order
		if i*2+1 >= len(id.calls) || id.calls[2*i] != l.Name+".to_k" || id.calls[2*i+1] != l.Name+".to_v" {
			t.Fatalf("editor calls %v do not follow CrossAttentions order", id.calls)
		}
	}

	scaled, err := m.Forward(ctx, x, ts, cond, Call{Editor: &editor{e: ops.CPU(), scaleV: 1.5}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxErr(plain.Data(), scaled.Data()); d < 1e-3 {
		t.Errorf("scaling V by 1.5 changed eps by only %g", d)
	}

	if _, err := m.Forward(ctx, x, ts, cond, Call{Editor: badEditor{}}); err == nil || !strings.Contains(err.Error(), layers[0].Name) {
		t.Errorf("editor error not reported with the layer name: %v", err)
	}
	if _, err := m.Forward(ctx, x, ts, cond, Call{}, Call{}); err == nil {
		t.Error("two Calls: no error")
	}
	// An editor given to one call does not leak into the next.
	again, err := m.Forward(ctx, x, ts, cond)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plain.Data(), again.Data()) {
		t.Error("a call without an editor differs from the first plain call")
	}
}

type badEditor struct{}

func (badEditor) Project(layer string, kv KV, ctx, w tensor.Tensor) (tensor.Tensor, error) {
	return tensor.Zeros(1, 2, 3), nil // wrong shape
}

func TestForwardErrors(t *testing.T) {
	m := tiny(t)
	f := golden.Open(t, ioFile)
	x, ts, cond := inputs(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Forward(ctx, x, ts, cond); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	bg := context.Background()
	if _, err := m.Forward(bg, x, ts[:1], cond); err == nil {
		t.Error("one timestep for two samples: no error")
	}
	if _, err := m.Forward(bg, cond, ts, cond); err == nil {
		t.Error("context as x: no error")
	}
	if _, err := m.Forward(bg, tensor.Zeros(x.Dim(0), x.Dim(1), 0, x.Dim(3)), ts, cond); err == nil {
		t.Error("empty latent: no error")
	}
}

// Latents of any size run as in diffusers: each Downsample gives
// ceil(side/2), each Upsample resizes to the skip it meets, so every
// output block has its skip's size and eps has x's.
func TestAnySize(t *testing.T) {
	m := tiny(t)
	if m.SizeMultiple() != 1 {
		t.Fatalf("SizeMultiple() = %d, want 1", m.SizeMultiple())
	}
	_, ts, cond := inputs(t, golden.Open(t, ioFile))
	levels := len(m.Config.ChannelMult)
	for _, hw := range [][2]int{{13, 11}, {16, 15}, {9, 9}, {5, 3}, {1, 1}, {17, 32}} {
		x := tensor.Zeros(cond.Dim(0), m.Config.InChannels, hw[0], hw[1])
		for i := range x.Data() {
			x.Data()[i] = float32(math.Sin(float64(i)))
		}
		trace, got := record()
		m.Trace = trace
		eps, err := m.Forward(context.Background(), x, ts, cond)
		m.Trace = nil
		if err != nil {
			t.Fatalf("%v: %v", hw, err)
		}
		if !tensor.SameShape(eps.Shape(), []int{x.Dim(0), m.Config.OutChannels, hw[0], hw[1]}) {
			t.Fatalf("%v: eps %v", hw, eps.Shape())
		}
		for _, v := range eps.Data() {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%v: eps not finite", hw)
			}
		}
		// the side at each level: ceil halvings
		side := [][2]int{hw}
		for l := 1; l < levels; l++ {
			p := side[l-1]
			side = append(side, [2]int{(p[0] + 1) / 2, (p[1] + 1) / 2})
		}
		level := 0
		var sizes [][2]int // of input block outputs, in order
		for i := range len(m.input) {
			o := got[fmt.Sprintf("input_blocks.%d", i)]
			if level < levels-1 && i > 0 && i%(m.Config.NumResBlocks+1) == 0 {
				level++
			}
			if want := side[level]; o.Dim(2) != want[0] || o.Dim(3) != want[1] {
				t.Errorf("%v: input_blocks.%d is %v, want %v", hw, i, o.Shape(), want)
			}
			sizes = append(sizes, [2]int{o.Dim(2), o.Dim(3)})
		}
		for i := range len(m.output) {
			o := got[fmt.Sprintf("output_blocks.%d", i)]
			want := sizes[len(sizes)-1] // the skip this block took: the next one's when it upsamples
			sizes = sizes[:len(sizes)-1]
			if len(sizes) > 0 && i%(m.Config.NumResBlocks+1) == m.Config.NumResBlocks {
				want = sizes[len(sizes)-1]
			}
			if o.Dim(2) != want[0] || o.Dim(3) != want[1] {
				t.Errorf("%v: output_blocks.%d is %v, want %v", hw, i, o.Shape(), want)
			}
		}
	}
}

func TestStrictLoad(t *testing.T) {
	src := weights.Safetensors(golden.Open(t, "tiny_unet.safetensors"))
	mp := weights.Map{}
	for _, n := range src.Names() {
		d, s, err := src.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		mp[n] = weights.Tensor{Data: d, Shape: s}
	}
	cfg := goldenConfig(t)
	if _, err := Load(ops.CPU(), mp, cfg); err != nil {
		t.Fatalf("complete map: %v", err)
	}
	missing := Prefix + "output_blocks.5.1.transformer_blocks.0.attn2.to_v.weight"
	reshaped := Prefix + "input_blocks.4.0.skip_connection.weight"
	extra := Prefix + "input_blocks.4.0.skip_connection.scale"
	delete(mp, missing)
	r := mp[reshaped]
	mp[reshaped] = weights.Tensor{Data: r.Data, Shape: []int{r.Shape[0], r.Shape[1]}}
	mp[extra] = weights.Tensor{Data: []float32{1}, Shape: []int{1}}
	mp["model_ema.decay"] = weights.Tensor{Data: []float32{1}, Shape: []int{1}} // other prefix: ignored
	_, err := Load(ops.CPU(), mp, cfg)
	var le *blocks.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("want *blocks.LoadError, got %v", err)
	}
	if len(le.Problems) != 3 {
		t.Errorf("%d problems, want 3:\n%v", len(le.Problems), err)
	}
	for _, name := range []string{missing, reshaped, extra} {
		if !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

// SD2-style linear proj_in/proj_out is the same map as SD1's 1x1 convs:
// the tiny weights with those tensors stored 2-D are detected as linear and
// give the same eps.
func TestLinearProjection(t *testing.T) {
	if testing.Short() {
		t.Skip("second tiny UNet forward")
	}
	src := weights.Safetensors(golden.Open(t, "tiny_unet.safetensors"))
	mp := weights.Map{}
	for _, n := range src.Names() {
		d, s, err := src.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(n, ".proj_in.weight") || strings.HasSuffix(n, ".proj_out.weight") {
			s = s[:2] // [C, C, 1, 1] -> [C, C]
		}
		mp[n] = weights.Tensor{Data: d, Shape: s}
	}
	cfg, err := Detect(mp)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.UseLinearProjection {
		t.Fatal("2-D proj_in not detected as linear projection")
	}
	cfg.NumHeads = goldenConfig(t).NumHeads
	m, err := Load(ops.CPU(), mp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := golden.Open(t, ioFile)
	x, ts, cond := inputs(t, f)
	eps, err := m.Forward(context.Background(), x, ts, cond)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := golden.Float32(t, f, "eps")
	golden.Check(t, "eps (linear projection)", eps.Data(), want, golden.Tolerance(t, ioFile, "eps"))
}

// biasEditor adds a trainable bias to one layer's V projection, as a
// stand-in for a trained Perfusion target.
type biasEditor struct {
	e     *ops.Engine
	layer string
	bias  tensor.Tensor // [inner]
}

func (b biasEditor) Project(layer string, kv KV, ctx, w tensor.Tensor) (tensor.Tensor, error) {
	if layer == b.layer && kv == Value {
		return b.e.Linear(ctx, w, b.bias)
	}
	return b.e.Linear(ctx, w, tensor.Tensor{})
}

// Gradients flow back through the whole UNet into what an editor uses
// (checked by central differences of sum(eps * r)).
func TestEditorGradient(t *testing.T) {
	if testing.Short() {
		t.Skip("backward through the tiny UNet")
	}
	editorGradient(t, tiny(t))
}

// editorGradient checks the gradient of sum(eps * r) with respect to a
// bias an editor adds to one layer's V projection of m.
func editorGradient(t *testing.T, m *Model) {
	t.Helper()
	f := golden.Open(t, ioFile)
	x, ts, cond := inputs(t, f)
	layer := m.CrossAttentions()[1]
	inner := layer.ToV.Dim(0)
	vals := make([]float32, inner)
	for i := range vals {
		vals[i] = 0.1 * float32(i%5-2)
	}
	p, err := tensor.NewParam(vals, inner)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := m.Forward(context.Background(), x, ts, cond, Call{Editor: biasEditor{e: ops.CPU(), layer: layer.Name, bias: p}})
	if err != nil {
		t.Fatal(err)
	}
	r := make([]float32, eps.Size())
	for i := range r {
		r[i] = float32(math.Sin(float64(i)))
	}
	tensor.AccGrad(eps.Node(), r)
	if err := ag.Backward(eps.Node()); err != nil {
		t.Fatal(err)
	}
	grad := slices.Clone(p.Grad())
	if grad == nil {
		t.Fatal("no gradient reached the editor's parameter")
	}
	loss := func() float64 {
		ed := biasEditor{e: ops.CPU(), layer: layer.Name, bias: tensor.MustNew(vals, inner)}
		out, err := m.Forward(context.Background(), x, ts, cond, Call{Editor: ed})
		if err != nil {
			t.Fatal(err)
		}
		s := 0.0
		for i, v := range out.Data() {
			s += float64(v) * float64(r[i])
		}
		return s
	}
	const h = 1e-2
	for _, i := range []int{0, inner / 2, inner - 1} {
		old := vals[i]
		vals[i] = old + h
		up := loss()
		vals[i] = old - h
		down := loss()
		vals[i] = old
		fd := (up - down) / (2 * h)
		if math.Abs(fd-float64(grad[i])) > 2e-2*(1+math.Abs(fd)) {
			t.Errorf("grad[%d] = %g, finite difference %g", i, grad[i], fd)
		}
	}
}
