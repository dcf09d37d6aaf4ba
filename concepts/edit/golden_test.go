package edit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/ag"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

const (
	ioFile      = "perfusion_io.safetensors"
	unetIOFile  = "perfusion_unet_io.safetensors"
	targetsFile = "perfusion_unet_target_outputs.safetensors"
)

// perfusionConfig is the part of perfusion_config.json the tests read.
type perfusionConfig struct {
	D     int `json:"D"`
	Out   int `json:"out"`
	Batch int `json:"batch"`
	Pairs []struct {
		Beta float64 `json:"beta"`
		Tau  float64 `json:"tau"`
	} `json:"beta_tau_pairs"`
	Planted map[string]float64 `json:"planted_alphas"`
	Multi   struct {
		Beta []float64 `json:"beta"`
		Tau  []float64 `json:"tau"`
	} `json:"multi"`
	UNet struct {
		Beta float64 `json:"beta"`
		Tau  float64 `json:"tau"`
	} `json:"unet"`
}

// tensorOf reads a golden tensor with its shape.
func tensorOf(t *testing.T, f *safetensors.File, name string) tensor.Tensor {
	t.Helper()
	v, shape := golden.Float32(t, f, name)
	return tensor.MustNew(v, shape...)
}

// pairNames maps each (beta, tau) pair of the io file to its tensor prefix
// ("beta0.75_tau0.1"), read from the file's names so that no float
// formatting has to match Python's.
func pairNames(t *testing.T, f *safetensors.File) map[[2]float64]string {
	t.Helper()
	out := map[[2]float64]string{}
	for _, n := range f.Names() {
		prefix, ok := strings.CutSuffix(n, ".K")
		if !ok || !strings.HasPrefix(prefix, "beta") {
			continue
		}
		b, tau, ok := strings.Cut(strings.TrimPrefix(prefix, "beta"), "_tau")
		if !ok {
			continue
		}
		bv, err1 := strconv.ParseFloat(b, 64)
		tv, err2 := strconv.ParseFloat(tau, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: cannot read beta and tau from the name", n)
		}
		out[[2]float64{bv, tv}] = prefix
	}
	return out
}

// goldenConcept is the io file's single concept with per-position targets
// under the layer name "l".
func goldenConcept(t *testing.T, f *safetensors.File, beta, tau float64, vTarget tensor.Tensor) *Concept {
	in, _ := golden.Float32(t, f, "target_input")
	return &Concept{Name: "golden", Input: in, Beta: float32(beta), Tau: float32(tau),
		Layers: map[string]Targets{"l": {K: tensorOf(t, f, "k_target_output"), V: vTarget}}}
}

func goldenMetric(t *testing.T, f *safetensors.File, d int) Metric {
	cinv, _ := golden.Float32(t, f, "C_inv")
	m, err := NewDenseMetric32(cinv, d)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// perfusion_io: K, V, similarity and gate for every (beta, tau) pair, with
// per-position targets.
func TestGoldenGatedKV(t *testing.T) {
	var cfg perfusionConfig
	golden.JSON(t, "perfusion_config.json", &cfg)
	f := golden.Open(t, ioFile)
	ctx := tensorOf(t, f, "context")
	if ctx.Dim(0) != cfg.Batch || ctx.Dim(2) != cfg.D {
		t.Fatalf("context %v, config says batch %d, D %d", ctx, cfg.Batch, cfg.D)
	}
	m := goldenMetric(t, f, cfg.D)
	wk, wv := tensorOf(t, f, "W_k"), tensorOf(t, f, "W_v")
	if len(cfg.Pairs) == 0 {
		t.Fatal("perfusion_config.json lists no (beta, tau) pairs")
	}
	names := pairNames(t, f)
	if len(names) != len(cfg.Pairs) {
		t.Errorf("the io file has %d (beta, tau) pairs, the config %d", len(names), len(cfg.Pairs))
	}
	for _, p := range cfg.Pairs {
		name, ok := names[[2]float64{p.Beta, p.Tau}]
		if !ok {
			t.Errorf("no tensors for beta %g, tau %g", p.Beta, p.Tau)
			continue
		}
		c := goldenConcept(t, f, p.Beta, p.Tau, tensorOf(t, f, "v_target_output"))
		ed, err := NewEditor(testEngine(), ctx, []*Concept{c}, m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		k, err := ed.Project("l", unet.Key, ctx, wk)
		if err != nil {
			t.Fatal(err)
		}
		v, err := ed.Project("l", unet.Value, ctx, wv)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Similarity(ctx, c, m)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct {
			suffix string
			got    []float32
		}{{"K", k.Data()}, {"V", v.Data()}, {"sim_ratio", s}, {"gate", ed.Gates()[0].Data()}} {
			tn := name + "." + x.suffix
			want, _ := golden.Float32(t, f, tn)
			golden.Check(t, tn, x.got, want, golden.Tolerance(t, ioFile, tn))
		}
		// The planted similarities hold exactly by construction.
		for pos, alpha := range cfg.Planted {
			var b, n int
			if _, err := fmt.Sscanf(pos, "%d,%d", &b, &n); err != nil {
				t.Fatalf("planted_alphas key %q: %v", pos, err)
			}
			if got := s[b*ctx.Dim(1)+n]; math.Abs(float64(got)-alpha) > 1e-4 {
				t.Errorf("%s: similarity at %s = %g, planted %g", name, pos, got, alpha)
			}
		}
	}
}

// perfusion_io: global locking (keys from the superclass-prompt encoding)
// at the training default pair.
func TestGoldenGlobalLocking(t *testing.T) {
	var cfg perfusionConfig
	golden.JSON(t, "perfusion_config.json", &cfg)
	f := golden.Open(t, ioFile)
	ctx, super := tensorOf(t, f, "context"), tensorOf(t, f, "context_super")
	c := goldenConcept(t, f, TrainBeta, TrainTau, tensorOf(t, f, "v_target_output"))
	ed, err := NewEditor(testEngine(), ctx, []*Concept{c}, goldenMetric(t, f, cfg.D), Options{Lock: Global, Super: super})
	if err != nil {
		t.Fatal(err)
	}
	k, err := ed.Project("l", unet.Key, ctx, tensorOf(t, f, "W_k"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := golden.Float32(t, f, "global_locking.K")
	golden.Check(t, "global_locking.K", k.Data(), want, golden.Tolerance(t, ioFile, "global_locking.K"))
}

// perfusion_io: gradients of L = sum(K*grad_out_k) + sum(V*grad_out_v) at
// the training default pair, to the context and the value target; the key
// target (frozen) gets none.
func TestGoldenGradients(t *testing.T) {
	var cfg perfusionConfig
	golden.JSON(t, "perfusion_config.json", &cfg)
	f := golden.Open(t, ioFile)
	cd, cs := golden.Float32(t, f, "context")
	ctx, err := tensor.NewParam(cd, cs...)
	if err != nil {
		t.Fatal(err)
	}
	vd, vs := golden.Float32(t, f, "v_target_output")
	vt, err := tensor.NewParam(vd, vs...)
	if err != nil {
		t.Fatal(err)
	}
	c := goldenConcept(t, f, TrainBeta, TrainTau, vt)
	ed, err := NewEditor(testEngine(), ctx, []*Concept{c}, goldenMetric(t, f, cfg.D), Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := ed.Project("l", unet.Key, ctx, tensorOf(t, f, "W_k"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ed.Project("l", unet.Value, ctx, tensorOf(t, f, "W_v"))
	if err != nil {
		t.Fatal(err)
	}
	gk, _ := golden.Float32(t, f, "grad_out_k")
	gv, _ := golden.Float32(t, f, "grad_out_v")
	loss := float32(dot64(k.Data(), gk) + dot64(v.Data(), gv))
	tensor.AccGrad(k.Node(), gk)
	tensor.AccGrad(v.Node(), gv)
	if err := ag.Backward(k.Node(), v.Node()); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		name string
		got  []float32
	}{{"grad.loss", []float32{loss}}, {"grad.v_target_output", vt.Grad()}, {"grad.context", ctx.Grad()}} {
		want, _ := golden.Float32(t, f, x.name)
		golden.Check(t, x.name, x.got, want, golden.Tolerance(t, ioFile, x.name))
	}
	if c.Layers["l"].K.Grad() != nil {
		t.Error("the key target got a gradient")
	}
}

// perfusion_io: two concepts in the exact (C⁻¹-orthogonalised) form; the
// Gram–Schmidt basis equals the reference's QR basis up to signs.
func TestGoldenMultiConcept(t *testing.T) {
	var cfg perfusionConfig
	golden.JSON(t, "perfusion_config.json", &cfg)
	f := golden.Open(t, ioFile)
	ins, is := golden.Float32(t, f, "multi.target_inputs")   // [M, D]
	outs, os := golden.Float32(t, f, "multi.target_outputs") // [M, T, O]
	mc := len(cfg.Multi.Beta)
	if is[0] != mc || os[0] != mc || len(cfg.Multi.Tau) != mc {
		t.Fatalf("multi: %v inputs, %v outputs, %d betas, %d taus", is, os, mc, len(cfg.Multi.Tau))
	}
	d, per := is[1], os[1]*os[2]
	m := goldenMetric(t, f, d)
	var cs []*Concept
	for i := range mc {
		cs = append(cs, &Concept{Name: fmt.Sprint("multi", i), Input: ins[i*d : (i+1)*d],
			Beta: float32(cfg.Multi.Beta[i]), Tau: float32(cfg.Multi.Tau[i]),
			Layers: map[string]Targets{"l": {V: tensor.MustNew(outs[i*per:(i+1)*per], os[1], os[2])}}})
	}
	ctx := tensorOf(t, f, "multi.context")
	ed, err := NewEditor(testEngine(), ctx, cs, m, Options{Multi: Exact})
	if err != nil {
		t.Fatal(err)
	}
	v, err := ed.Project("l", unet.Value, ctx, tensorOf(t, f, "W_v"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := golden.Float32(t, f, "multi.V")
	golden.Check(t, "multi.V", v.Data(), want, golden.Tolerance(t, ioFile, "multi.V"))

	gs, names, err := gatings(cs, m, d)
	if err != nil {
		t.Fatal(err)
	}
	basis, _, err := orthonormal(gs, names)
	if err != nil {
		t.Fatal(err)
	}
	wantB, _ := golden.Float32(t, f, "multi.target_inputs_basis")
	tol := golden.Tolerance(t, ioFile, "multi.target_inputs_basis")
	for k, b := range basis {
		got, ref := to32(b), wantB[k*d:(k+1)*d]
		if dot64(got, ref) < 0 { // QR fixes no sign
			for i := range got {
				got[i] = -got[i]
			}
		}
		golden.Check(t, fmt.Sprint("multi.target_inputs_basis ", k), got, ref, tol)
	}
}

// perfusion_unet_io: the whole tiny UNet with every cross-attention K/V
// edited, per-position targets from perfusion_unet_target_outputs.
func TestGoldenUNet(t *testing.T) {
	m, err := unet.Load(testEngine(), weightsOf(t, "tiny_unet.safetensors"), tinyUNetConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	f := golden.Open(t, unetIOFile)
	tf := golden.Open(t, targetsFile)
	in, _ := golden.Float32(t, f, "target_input")
	beta, _ := golden.Float32(t, f, "beta")
	tau, _ := golden.Float32(t, f, "tau")
	c := &Concept{Name: "golden", Input: in, Beta: beta[0], Tau: tau[0], Layers: map[string]Targets{}}
	layers := m.CrossAttentions()
	for _, l := range layers {
		c.Layers[l.Name] = Targets{K: tensorOf(t, tf, l.Name+".to_k.target_output"), V: tensorOf(t, tf, l.Name+".to_v.target_output")}
	}
	if n := len(tf.Names()); n != 2*len(layers) {
		t.Errorf("%s has %d targets for %d cross-attention layers", targetsFile, n, len(layers))
	}
	ctx := tensorOf(t, f, "context")
	x := tensorOf(t, f, "x")
	ts, _ := golden.Float32(t, f, "timesteps")
	ed, err := NewEditor(testEngine(), ctx, []*Concept{c}, goldenMetric(t, f, ctx.Dim(2)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	eps, err := m.Forward(t.Context(), x, ts, ctx, unet.Call{Editor: ed})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := golden.Float32(t, f, "eps")
	golden.Check(t, "eps", eps.Data(), want, golden.Tolerance(t, unetIOFile, "eps"))
	plain, err := m.Forward(t.Context(), x, ts, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(plain.Data(), eps.Data()); d < 1e-3 {
		t.Errorf("the edit changed eps by only %g", d)
	}
}
