package sampler

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/rng"
)

// toyEps is a smooth stand-in model: eps = 0.1 x + 0.05 sin(0.01 t).
func toyEps(_ context.Context, x []float32, t float64) ([]float32, error) {
	out := make([]float32, len(x))
	for j, v := range x {
		out[j] = 0.1*v + float32(0.05*math.Sin(0.01*t))
	}
	return out, nil
}

// TestSampleCancel cancels the context inside the model at step k: Sample
// must return ctx.Err() before evaluating step k+1, for every sampler.
func TestSampleCancel(t *testing.T) {
	s := SD15()
	const steps, k = 6, 2
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			smp, err := New(name, s, steps, rng.New(3).Randn)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls, progressed := 0, 0
			model := func(ctx context.Context, x []float32, tt float64) ([]float32, error) {
				if calls == k {
					cancel()
				}
				calls++
				return toyEps(ctx, x, tt)
			}
			out, err := Sample(ctx, smp, model, rng.New(1).Randn(64), func(int, int, []float32, []float32) { progressed++ })
			if !errors.Is(err, context.Canceled) || out != nil {
				t.Fatalf("Sample after cancel = (%d values, %v), want (nil, context.Canceled)", len(out), err)
			}
			if calls != k+1 || progressed != k+1 {
				t.Fatalf("model called %d times, progress %d; want %d each", calls, progressed, k+1)
			}
		})
	}
}

// TestSampleModelError: a model error stops sampling and is wrapped.
func TestSampleModelError(t *testing.T) {
	smp, err := New("euler", SD15(), 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err = Sample(context.Background(), smp, func(context.Context, []float32, float64) ([]float32, error) {
		return nil, boom
	}, make([]float32, 8), nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "step 1 of 5") {
		t.Fatalf("err = %v, want wrapped boom naming step 1 of 5", err)
	}
	// A model returning the wrong size is an error, not a panic.
	smp, _ = New("ddim", SD15(), 5, nil)
	_, err = Sample(context.Background(), smp, func(context.Context, []float32, float64) ([]float32, error) {
		return make([]float32, 3), nil
	}, make([]float32, 8), nil)
	if err == nil || !strings.Contains(err.Error(), "8 values, model output 3") {
		t.Fatalf("err = %v, want a size mismatch", err)
	}
}

// TestNew checks the registry's errors.
func TestNew(t *testing.T) {
	s := SD15()
	if len(Names()) != 7 {
		t.Errorf("Names() = %v", Names())
	}
	_, err := New("heun", s, 10, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown sampler "heun"`) || !strings.Contains(err.Error(), strings.Join(Names(), ", ")) {
		t.Errorf("unknown name: err = %v, want one listing %v", err, Names())
	}
	for _, tc := range []struct {
		name  string
		steps int
		noise func(int) []float32
		want  string
	}{
		{"euler", 0, nil, "steps = 0"},
		{"euler_a", 10, nil, "needs a noise source"},
		{"lcm", 4, nil, "needs a noise source"},
		{"lcm", 51, rng.New(1).Randn, "at most 50"},
		{"ddim", 1001, nil, "want 1..1000"},
	} {
		if _, err := New(tc.name, s, tc.steps, tc.noise); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %d): err = %v, want %q", tc.name, tc.steps, err, tc.want)
		}
	}
	// One step needs no noise, even for the stochastic samplers.
	for _, name := range []string{"euler_a", "lcm"} {
		if _, err := New(name, s, 1, nil); err != nil {
			t.Errorf("New(%q, 1, nil): %v", name, err)
		}
	}
	if _, err := New("euler", nil, 4, nil); err == nil {
		t.Error("nil schedule accepted")
	}
}

// TestDenoiseFrom: Denoise from step 0 on a pre-scaled latent is Sample, and
// AddNoise puts a clean latent at each sampler's step-i noise level.
func TestDenoiseFrom(t *testing.T) {
	s := SD15()
	xT := rng.New(5).Randn(32)
	for _, name := range Names() {
		a, _ := New(name, s, 5, rng.New(9).Randn)
		b, _ := New(name, s, 5, rng.New(9).Randn)
		want, err := Sample(context.Background(), a, toyEps, xT, nil)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, len(xT))
		for j := range x {
			x[j] = xT[j] * float32(b.InitNoiseSigma())
		}
		got, err := Denoise(context.Background(), b, toyEps, x, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if got[j] != want[j] {
				t.Fatalf("%s: Denoise(from 0)[%d] = %g, Sample %g", name, j, got[j], want[j])
			}
		}
		// AddNoise at step 2 with zero clean latent gives noise * level.
		z := rng.New(2).Randn(len(xT))
		noisy := b.AddNoise(make([]float32, len(z)), z, 2)
		level := math.Sqrt(1 - float64(s.AlphasCumprod[int(b.Timesteps()[2])]))
		if ks, ok := b.(KSampler); ok {
			level = ks.Sigmas()[2]
		}
		for j := range z {
			if d := math.Abs(float64(noisy[j]) - level*float64(z[j])); d > 1e-5*(1+level) {
				t.Fatalf("%s: AddNoise[%d] = %g, want %g", name, j, noisy[j], level*float64(z[j]))
			}
		}
		if _, err := Denoise(context.Background(), b, toyEps, noisy, 2, nil); err != nil {
			t.Fatalf("%s: Denoise from step 2: %v", name, err)
		}
		if _, err := Denoise(context.Background(), b, toyEps, noisy, 6, nil); err == nil {
			t.Fatalf("%s: Denoise from step 6 of 5 accepted", name)
		}
	}
}

// TestCFG checks guidance against the formula in float64.
func TestCFG(t *testing.T) {
	u := rng.New(1).Randn(40)
	c := rng.New(2).Randn(40)
	for _, scale := range []float32{0, 1, 7.5} {
		got := CFG(u, c, scale)
		for j := range got {
			want := float64(u[j]) + float64(scale)*(float64(c[j])-float64(u[j]))
			if math.Abs(float64(got[j])-want) > 1e-5*(1+math.Abs(want)) {
				t.Fatalf("scale %g: CFG[%d] = %g, want %g", scale, j, got[j], want)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("CFG with mismatched lengths did not panic")
		}
	}()
	CFG(u, c[:3], 2)
}
