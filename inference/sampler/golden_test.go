package sampler

import (
	"context"
	"fmt"
	"math"
	"sort"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

const samplersFile = "samplers_io.safetensors"

// samplersConfig is samplers_config.json.
type samplersConfig struct {
	FakeEps struct{ A, B, C float64 } `json:"fake_eps_model"`
	Raw     struct{ A, B float64 }    `json:"raw_denoiser"`
	Steps   []int                     `json:"steps"`
	Sched   struct {
		LinearStart float64 `json:"linear_start"`
		LinearEnd   float64 `json:"linear_end"`
		Timesteps   int     `json:"timesteps"`
	} `json:"schedule"`
	CFG struct {
		Scale     float64 `json:"scale"`
		DDIMSteps int     `json:"ddim_steps"`
		DDIMIndex int     `json:"ddim_index"`
	} `json:"cfg"`
}

func loadConfig(t *testing.T) (samplersConfig, *Schedule) {
	t.Helper()
	var cfg samplersConfig
	golden.JSON(t, "samplers_config.json", &cfg)
	if len(cfg.Steps) == 0 {
		t.Fatal("samplers_config.json lists no step counts")
	}
	s, err := NewScaledLinear(cfg.Sched.LinearStart, cfg.Sched.LinearEnd, cfg.Sched.Timesteps)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, s
}

// checker compares against one golden file and remembers what it checked.
type checker struct {
	t       *testing.T
	f       *safetensors.File
	file    string
	checked map[string]bool
}

func newChecker(t *testing.T, file string) *checker {
	return &checker{t: t, f: golden.Open(t, file), file: file, checked: map[string]bool{}}
}

func (c *checker) input(name string) []float32 {
	c.t.Helper()
	v, _ := golden.Float32(c.t, c.f, name)
	c.checked[name] = true
	return v
}

func (c *checker) f32(name string, got []float32) {
	c.t.Helper()
	want, _ := golden.Float32(c.t, c.f, name)
	golden.Check(c.t, name, got, want, golden.Tolerance(c.t, c.file, name))
	c.checked[name] = true
}

func (c *checker) f64(name string, got []float64) {
	c.t.Helper()
	want, _, err := c.f.Float64(name)
	if err != nil {
		c.t.Fatalf("golden tensor %s: %v", name, err)
	}
	c.checked[name] = true
	tol := golden.Tolerance(c.t, c.file, name)
	if len(got) != len(want) {
		c.t.Errorf("%s: got %d values, want %d", name, len(got), len(want))
		return
	}
	for i := range want {
		if d := math.Abs(got[i] - want[i]); !(d <= tol.Atol+tol.Rtol*math.Abs(want[i])) {
			c.t.Errorf("%s[%d] = %.17g, want %.17g (diff %g, atol %g)", name, i, got[i], want[i], d, tol.Atol)
			return
		}
	}
}

func (c *checker) i64(name string, got []int64) {
	c.t.Helper()
	want, _, err := c.f.Int64(name)
	if err != nil {
		c.t.Fatalf("golden tensor %s: %v", name, err)
	}
	c.checked[name] = true
	if fmt.Sprint(got) != fmt.Sprint(want) {
		c.t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// all reports golden tensors that no check read.
func (c *checker) all() {
	var missed []string
	for _, n := range c.f.Names() {
		if !c.checked[n] {
			missed = append(missed, n)
		}
	}
	sort.Strings(missed)
	if len(missed) > 0 {
		c.t.Errorf("%s: %d tensors not checked: %v", c.file, len(missed), missed)
	}
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// fakeEps is the golden eps model eps(x, t) = a*x + b*sin(c*t), in float32
// as the reference evaluates it; it records the t it is called with.
func fakeEps(cfg samplersConfig, ts *[]float64) EpsFunc {
	a, b, c := float32(cfg.FakeEps.A), float32(cfg.FakeEps.B), float32(cfg.FakeEps.C)
	return func(_ context.Context, x []float32, t float64) ([]float32, error) {
		*ts = append(*ts, t)
		bs := b * float32(math.Sin(float64(c*float32(t))))
		out := make([]float32, len(x))
		for j, v := range x {
			out[j] = a*v + bs
		}
		return out, nil
	}
}

// rawDenoiser is the golden denoiser D(x, sigma) = x - sigma*(a*x + b*sin(sigma)).
func rawDenoiser(cfg samplersConfig, x []float32, sigma float64) []float32 {
	a, b, s := float32(cfg.Raw.A), float32(cfg.Raw.B), float32(sigma)
	bs := b * float32(math.Sin(float64(s)))
	out := make([]float32, len(x))
	for j, v := range x {
		out[j] = v - s*(a*v+bs)
	}
	return out
}

// rowSource hands out the rows of a [K, ...] tensor in order, counting calls.
type rowSource struct {
	rows  []float32
	n     int
	calls int
	t     *testing.T
}

func (r *rowSource) next(n int) []float32 {
	if n != r.n || (r.calls+1)*n > len(r.rows) {
		r.t.Fatalf("noise call %d for %d values: source has %d rows of %d", r.calls, n, len(r.rows)/r.n, r.n)
	}
	z := append([]float32(nil), r.rows[r.calls*n:(r.calls+1)*n]...)
	r.calls++
	return z
}

// goldenNames maps the golden's sampler names to the registry's.
var goldenNames = []struct{ golden, name string }{
	{"euler", "euler"},
	{"euler_karras", "euler_karras"},
	{"euler_ancestral", "euler_a"},
	{"dpmpp_2m", "dpmpp_2m"},
	{"dpmpp_2m_karras", "dpmpp_2m_karras"},
}

// TestSamplersGolden checks every tensor of samplers_io.safetensors:
// schedules, DDIM parameters, and the DDIM and k-diffusion trajectories for
// each N of samplers_config.json, with the eps model through CompVisDenoiser
// (compvis.*) and with the raw denoiser (raw.*).
func TestSamplersGolden(t *testing.T) {
	cfg, s := loadConfig(t)
	c := newChecker(t, samplersFile)
	xT := c.input("x_T")

	c.f64("schedule.betas_f64", s.Betas)
	c.f64("schedule.alphas_cumprod_f64", s.AlphasCumprod64)
	c.f32("schedule.alphas_cumprod", s.AlphasCumprod)
	c.f32("schedule.kdiff_sigmas", s.Sigmas)
	c.f32("schedule.kdiff_sigma_min", s.Sigmas[:1])
	c.f32("schedule.kdiff_sigma_max", s.Sigmas[s.T()-1:])

	for _, n := range cfg.Steps {
		p := fmt.Sprintf("N%d.", n)
		t.Run(fmt.Sprint("N", n), func(t *testing.T) {
			c.t = t
			checkDDIM(c, cfg, s, n, p, xT)
			normal := s.KSigmas(n)
			c.f32(p+"kdiff_sigmas_normal", f32s(normal))
			c.f32(p+"kdiff_sigmas_karras", f32s(s.KarrasSigmas(n, 7)))
			tn := make([]float64, n)
			for i := range tn {
				tn[i] = s.SigmaToT(normal[i])
			}
			c.f32(p+"kdiff_t_normal", f32s(tn))
			noise := c.input(p + "ancestral_noise")
			for _, gn := range goldenNames {
				checkCompVis(c, cfg, s, n, p+"compvis."+gn.golden+".", gn.name, xT, noise)
				checkRaw(c, cfg, s, n, p+"raw."+gn.golden+".", gn.name, xT, noise)
			}
		})
	}
	c.t = t
	c.all()
}

func checkDDIM(c *checker, cfg samplersConfig, s *Schedule, n int, p string, xT []float32) {
	t := c.t
	dp, err := NewDDIMSchedule(s, n)
	if err != nil {
		t.Fatal(err)
	}
	ts := make([]int64, len(dp.Timesteps))
	for i, v := range dp.Timesteps {
		ts[i] = int64(v)
	}
	c.i64(p+"ddim_timesteps", ts)
	c.f32(p+"ddim_alphas", dp.Alphas)
	c.f32(p+"ddim_alphas_prev", dp.AlphasPrev)
	c.f32(p+"ddim_sqrt_one_minus_alphas", dp.SqrtOneMinusAlphas)
	c.f32(p+"ddim_sigmas_eta0", dp.Sigmas(0))
	c.f32(p+"ddim_sigmas_eta1", dp.Sigmas(1))

	smp, err := New("ddim", s, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	var modelT []float64
	xs, x0s := append([]float32(nil), xT...), []float32(nil)
	final, err := Sample(context.Background(), smp, fakeEps(cfg, &modelT), xT, func(_, _ int, x, den []float32) {
		xs = append(xs, x...)
		x0s = append(x0s, den...)
	})
	if err != nil {
		t.Fatal(err)
	}
	mt := make([]int64, len(modelT))
	for i, v := range modelT {
		mt[i] = int64(v)
	}
	c.i64(p+"ddim.model_t", mt)
	c.f32(p+"ddim.x_steps", xs)
	c.f32(p+"ddim.pred_x0", x0s)
	c.f32(p+"ddim.final", final)
}

func checkCompVis(c *checker, cfg samplersConfig, s *Schedule, n int, p, name string, xT, noise []float32) {
	t := c.t
	src := &rowSource{rows: noise, n: len(xT), t: t}
	smp, err := New(name, s, n, src.next)
	if err != nil {
		t.Fatal(err)
	}
	var modelT []float64
	xs := append([]float32(nil), xT...)
	for j := range xs {
		xs[j] *= float32(smp.InitNoiseSigma())
	}
	var dens []float32
	final, err := Sample(context.Background(), smp, fakeEps(cfg, &modelT), xT, func(_, _ int, x, den []float32) {
		xs = append(xs, x...)
		dens = append(dens, den...)
	})
	if err != nil {
		t.Fatal(err)
	}
	c.f32(p+"model_t", f32s(modelT))
	c.f32(p+"x_steps", xs)
	c.f32(p+"denoised", dens)
	c.f32(p+"final", final)
	if name == "euler_a" {
		c.i64(p+"noise_calls", []int64{int64(src.calls)})
	}
}

func checkRaw(c *checker, cfg samplersConfig, s *Schedule, n int, p, name string, xT, noise []float32) {
	t := c.t
	src := &rowSource{rows: noise, n: len(xT), t: t}
	smp, err := New(name, s, n, src.next)
	if err != nil {
		t.Fatal(err)
	}
	ks, ok := smp.(KSampler)
	if !ok {
		t.Fatalf("%s is not a KSampler", name)
	}
	sigmas := ks.Sigmas()
	x := make([]float32, len(xT))
	for j, v := range xT {
		x[j] = v * float32(sigmas[0])
	}
	xs := append([]float32(nil), x...)
	var dens []float32
	for i := 0; i < len(sigmas)-1; i++ {
		d := rawDenoiser(cfg, x, sigmas[i])
		if x, err = ks.StepDenoised(i, x, d); err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x...)
		dens = append(dens, d...)
	}
	c.f32(p+"x_steps", xs)
	c.f32(p+"denoised", dens)
	c.f32(p+"final", x)
	if name == "euler_a" {
		c.i64(p+"noise_calls", []int64{int64(src.calls)})
	}
}

// TestSD15Schedule: the built-in SD1.5 schedule is the golden one when the
// golden config is SD1.5's.
func TestSD15Schedule(t *testing.T) {
	cfg, s := loadConfig(t)
	if cfg.Sched.LinearStart != 0.00085 || cfg.Sched.LinearEnd != 0.012 || cfg.Sched.Timesteps != 1000 {
		t.Skip("golden schedule is not SD1.5's")
	}
	sd := SD15()
	for i := range s.Betas {
		if sd.Betas[i] != s.Betas[i] || sd.AlphasCumprod[i] != s.AlphasCumprod[i] {
			t.Fatalf("SD15 differs from the golden schedule at %d", i)
		}
	}
	c := newChecker(t, samplersFile)
	c.f32("schedule.alphas_cumprod", sd.AlphasCumprod)
}

// TestCFGGolden checks guidance and the guided DDIM step of cfg_io.
func TestCFGGolden(t *testing.T) {
	cfg, s := loadConfig(t)
	c := newChecker(t, "cfg_io.safetensors")
	scale := c.input("scale")
	eps := CFG(c.input("eps_uncond"), c.input("eps_cond"), scale[0])
	c.f32("eps_guided", eps)
	if float64(scale[0]) != float64(float32(cfg.CFG.Scale)) {
		t.Errorf("cfg_io scale %g, config %g", scale[0], cfg.CFG.Scale)
	}

	idx, _, err := c.f.Int64("ddim_index")
	if err != nil {
		t.Fatal(err)
	}
	tt, _, err := c.f.Int64("ddim_t")
	if err != nil {
		t.Fatal(err)
	}
	c.checked["ddim_index"], c.checked["ddim_t"] = true, true
	if int(idx[0]) != cfg.CFG.DDIMIndex {
		t.Errorf("cfg_io ddim_index %d, config %d", idx[0], cfg.CFG.DDIMIndex)
	}
	smp, err := New("ddim", s, cfg.CFG.DDIMSteps, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := smp.Timesteps()
	i := len(ts) - 1 - int(idx[0]) // steps visit the DDIM indices from the top
	if i < 0 || i >= len(ts) || int64(ts[i]) != tt[0] {
		t.Fatalf("ddim index %d: step %d of %v, want timestep %d", idx[0], i, ts, tt[0])
	}
	next, x0, err := smp.Step(i, c.input("ddim_x"), eps)
	if err != nil {
		t.Fatal(err)
	}
	c.f32("ddim_x_prev", next)
	c.f32("ddim_pred_x0", x0)
	c.all()
}
