package vae

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

const ioFile = "tiny_vae_io.safetensors"

func tiny(t *testing.T) (*Model, weights.Source) {
	t.Helper()
	src := weights.Safetensors(golden.Open(t, "tiny_vae.safetensors"))
	m, err := Load(ops.CPU(), src, goldenConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return m, src
}

func read(t *testing.T, name string) tensor.Tensor {
	t.Helper()
	d, s := golden.Float32(t, golden.Open(t, ioFile), name)
	return tensor.MustNew(d, s...)
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
	got := map[string]tensor.Tensor{}
	m.Trace = func(name string, out tensor.Tensor) {
		got["intermediate."+name] = tensor.MustNew(slices.Clone(out.Data()), out.Shape()...)
	}
	ctx := context.Background()
	dec, err := m.Decode(ctx, read(t, "z"))
	if err != nil {
		t.Fatal(err)
	}
	post, err := m.Encode(ctx, read(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	sample, err := post.Sample(read(t, "posterior_noise").Data())
	if err != nil {
		t.Fatal(err)
	}
	got["decoded"], got["moments"], got["mean"] = dec, post.Moments, post.Mean
	got["logvar"], got["std"], got["posterior_sample"] = post.LogVar, post.Std, sample

	f := golden.Open(t, ioFile)
	inputs := map[string]bool{"z": true, "x": true, "posterior_noise": true}
	n := 0
	for _, name := range f.Names() {
		if inputs[name] {
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
			t.Logf("%-50s max abs error %.3g", name, maxErr(g.Data(), want))
		}
	}
	if n == 0 {
		t.Error("no outputs in the golden file")
	}
}

// Without a Tracer, Decode and Encode fuse GroupNorm with swish: their
// outputs must match the golden ones too.
func TestGoldenUntraced(t *testing.T) {
	m, _ := tiny(t)
	ctx := context.Background()
	dec, err := m.Decode(ctx, read(t, "z"))
	if err != nil {
		t.Fatal(err)
	}
	post, err := m.Encode(ctx, read(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	f := golden.Open(t, ioFile)
	for name, got := range map[string]tensor.Tensor{"decoded": dec, "moments": post.Moments} {
		want, _ := golden.Float32(t, f, name)
		golden.Check(t, name+" (untraced)", got.Data(), want, golden.Tolerance(t, ioFile, name))
	}
}

// The diffusion-space helpers scale by ScaleFactor around Decode/Sample.
func TestLatentScale(t *testing.T) {
	m, _ := tiny(t)
	ctx := context.Background()
	z := read(t, "z")
	plain, err := m.Decode(ctx, z)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Config.ScaleFactor
	scaled := make([]float32, z.Size())
	for i, v := range z.Data() {
		scaled[i] = v * s
	}
	viaLatents, err := m.DecodeLatents(ctx, tensor.MustNew(scaled, z.Shape()...))
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "DecodeLatents(s*z) vs Decode(z)", viaLatents.Data(), plain.Data(), golden.Tol{Atol: 1e-4, Rtol: 1e-4})

	post, err := m.Encode(ctx, read(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	noise := read(t, "posterior_noise").Data()
	lat, err := m.Latents(post, noise)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := golden.Float32(t, golden.Open(t, ioFile), "posterior_sample")
	for i := range want {
		want[i] *= s
	}
	golden.Check(t, "Latents", lat.Data(), want, golden.Tol{Atol: 1e-5, Rtol: 1e-5})
	if _, err := post.Sample(noise[1:]); err == nil {
		t.Error("short noise: no error")
	}
}

func TestErrors(t *testing.T) {
	m, _ := tiny(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Decode(ctx, read(t, "z")); !errors.Is(err, context.Canceled) {
		t.Errorf("decode with cancelled context: %v", err)
	}
	if _, err := m.Encode(ctx, read(t, "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("encode with cancelled context: %v", err)
	}
	bg := context.Background()
	if _, err := m.Decode(bg, read(t, "x")); err == nil {
		t.Error("decode of an image: no error")
	}
	if _, err := m.Encode(bg, read(t, "z")); err == nil {
		t.Error("encode of latents: no error")
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
	cfg := goldenConfig(t)
	// A converter's [C, C] attention weight is accepted.
	q := Prefix + "decoder.mid.attn_1.q.weight"
	qs := mp[q].Shape
	mp[q] = weights.Tensor{Data: mp[q].Data, Shape: qs[:2]}
	if _, err := Load(ops.CPU(), mp, cfg); err != nil {
		t.Fatalf("complete map: %v", err)
	}
	missing := Prefix + "encoder.down.0.downsample.conv.bias"
	reshaped := Prefix + "decoder.up.0.block.0.nin_shortcut.weight"
	delete(mp, missing)
	r := mp[reshaped]
	mp[reshaped] = weights.Tensor{Data: r.Data, Shape: []int{r.Shape[1], r.Shape[0], 1, 1}}
	_, err := Load(ops.CPU(), mp, cfg)
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

// Attention inside levels (attn_resolutions) is loaded under down.i.attn.j
// and up.i.attn.j: asking for it at a level the checkpoint has none
// reports each of its tensors missing, and nothing else. Checked on the
// golden VAE and on zero weights of a config with two ResnetBlocks per
// level and three levels.
func TestLevelAttentionNames(t *testing.T) {
	_, src := tiny(t)
	checkLevelAttention(t, src, goldenConfig(t))

	cfg := goldenConfig(t)
	cfg.NumResBlocks, cfg.ChMult, cfg.AttnLevels = 2, []int{1, 2, 2}, nil
	shapes, err := Tensors(cfg)
	if err != nil {
		t.Fatal(err)
	}
	zeros := weights.Map{}
	for n, s := range shapes {
		zeros[n] = weights.Tensor{Data: make([]float32, tensor.Numel(s)), Shape: s}
	}
	checkLevelAttention(t, zeros, cfg)
}

// checkLevelAttention loads src, which has no attention at some level of
// cfg, with attention asked for there. The expected problems come from the
// config and the file: an AttnBlock has as many tensors as the middle
// block's, an encoder level NumResBlocks of them and a decoder level one
// more.
func checkLevelAttention(t *testing.T, src weights.Source, cfg Config) {
	t.Helper()
	level := -1
	for i := range cfg.ChMult {
		if !slices.Contains(cfg.AttnLevels, i) {
			level = i
			break
		}
	}
	if level < 0 {
		t.Logf("every level of %v has attention; none to add", cfg)
		return
	}
	perBlock := 0
	for _, n := range src.Names() {
		if strings.HasPrefix(n, Prefix+"decoder.mid.attn_1.") {
			perBlock++
		}
	}
	if perBlock == 0 {
		t.Fatalf("no tensors under %sdecoder.mid.attn_1.", Prefix)
	}
	cfg.AttnLevels = append(slices.Clone(cfg.AttnLevels), level)
	_, err := Load(ops.CPU(), src, cfg)
	var le *blocks.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("attention added at level %d: want *blocks.LoadError, got %v", level, err)
	}
	all := strings.Join(le.Problems, "\n")
	for _, name := range []string{
		fmt.Sprintf("encoder.down.%d.attn.0.q.weight", level),
		fmt.Sprintf("encoder.down.%d.attn.%d.norm.bias", level, cfg.NumResBlocks-1),
		fmt.Sprintf("decoder.up.%d.attn.%d.proj_out.bias", level, cfg.NumResBlocks),
	} {
		if !strings.Contains(all, `"`+Prefix+name+`"`) {
			t.Errorf("missing %s not reported:\n%s", name, all)
		}
	}
	nBlocks := 2*cfg.NumResBlocks + 1
	if len(le.Problems) != perBlock*nBlocks || strings.Contains(all, "unexpected") {
		t.Errorf("%d problems, want %d missing level-%d attention tensors (%d per block, %d blocks):\n%s",
			len(le.Problems), perBlock*nBlocks, level, perBlock, nBlocks, all)
	}
	for _, p := range le.Problems {
		if !strings.Contains(p, fmt.Sprintf("down.%d.attn.", level)) && !strings.Contains(p, fmt.Sprintf("up.%d.attn.", level)) {
			t.Errorf("problem outside level %d: %s", level, p)
		}
	}
}
