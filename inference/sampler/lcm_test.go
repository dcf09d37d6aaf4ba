package sampler

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/rng"
)

// lcmTimesteps64 is diffusers' LCMScheduler.set_timesteps written plainly:
// the distillation schedule [1..50]*(T/50) - 1, reversed, sampled at indices
// floor(linspace(0, 50, N, endpoint=False)).
func lcmTimesteps64(T, n int) []int {
	k := T / 50
	var origin []int
	for j := 50; j >= 1; j-- {
		origin = append(origin, j*k-1)
	}
	var out []int
	for i := 0; i < n; i++ {
		out = append(out, origin[int(math.Floor(float64(i)*50/float64(n)))])
	}
	return out
}

func TestLCMTimesteps(t *testing.T) {
	s := SD15()
	for n := 1; n <= 50; n++ {
		smp, err := New("lcm", s, n, rng.New(1).Randn)
		if err != nil {
			t.Fatal(err)
		}
		got, want := smp.Timesteps(), lcmTimesteps64(s.T(), n)
		if fmt.Sprint(f32s(got)) != fmt.Sprint(want) {
			t.Fatalf("N=%d: timesteps %v, want %v", n, got, want)
		}
		for i := 1; i < n; i++ {
			if !(got[i] < got[i-1]) {
				t.Fatalf("N=%d: timesteps not descending: %v", n, got)
			}
		}
	}
	// The usual 4-step LCM schedule.
	smp, _ := New("lcm", s, 4, rng.New(1).Randn)
	if got := fmt.Sprint(smp.Timesteps()); got != "[999 759 499 259]" {
		t.Errorf("4-step timesteps %s, want [999 759 499 259]", got)
	}
}

// TestLCMFormula runs LCM in float32 and compares every step with a float64
// evaluation of the formulas of Luo et al. (2023) / LCMScheduler.step.
func TestLCMFormula(t *testing.T) {
	s := SD15()
	const size = 48
	for _, n := range []int{1, 2, 4, 8} {
		noiseRows := make([][]float32, 0)
		noise := rng.New(11)
		src := func(k int) []float32 {
			z := noise.Randn(k)
			noiseRows = append(noiseRows, z)
			return z
		}
		smp, err := New("lcm", s, n, src)
		if err != nil {
			t.Fatal(err)
		}
		xT := rng.New(4).Randn(size)
		var got [][]float32
		final, err := Sample(context.Background(), smp, toyEps, xT, func(_, _ int, x, den []float32) {
			got = append(got, append([]float32(nil), x...))
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(noiseRows) != n-1 {
			t.Errorf("N=%d: %d noise draws, want %d (none on the last step)", n, len(noiseRows), n-1)
		}

		// float64 reference.
		ts := lcmTimesteps64(s.T(), n)
		x := make([]float64, size)
		for j, v := range xT {
			x[j] = float64(v)
		}
		for i, tt := range ts {
			a := float64(s.AlphasCumprod[tt])
			st := 10 * float64(tt)
			cSkip := 0.25 / (st*st + 0.25)
			cOut := st / math.Sqrt(st*st+0.25)
			next := make([]float64, size)
			for j := range x {
				eps := 0.1*x[j] + 0.05*math.Sin(0.01*float64(tt))
				x0 := (x[j] - math.Sqrt(1-a)*eps) / math.Sqrt(a)
				den := cSkip*x[j] + cOut*x0
				next[j] = den
				if i < n-1 {
					ap := float64(s.AlphasCumprod[ts[i+1]])
					next[j] = math.Sqrt(ap)*den + math.Sqrt(1-ap)*float64(noiseRows[i][j])
				}
			}
			x = next
			for j := range x {
				if d := math.Abs(float64(got[i][j]) - x[j]); d > 1e-5*(1+math.Abs(x[j])) {
					t.Fatalf("N=%d step %d [%d]: got %g, float64 %g", n, i, j, got[i][j], x[j])
				}
			}
		}
		for j := range final {
			if final[j] != got[n-1][j] {
				t.Fatalf("N=%d: final differs from the last step", n)
			}
		}
	}
}

// TestLCMOracle: with a model that returns the exact noise of a known clean
// latent, every step's estimate (and so the output) is that latent, up to the
// tiny c_skip of the boundary condition.
func TestLCMOracle(t *testing.T) {
	s := SD15()
	x0 := rng.New(21).Randn(64)
	smp, err := New("lcm", s, 4, rng.New(22).Randn)
	if err != nil {
		t.Fatal(err)
	}
	oracle := func(_ context.Context, x []float32, tt float64) ([]float32, error) {
		a := float64(s.AlphasCumprod[int(tt)])
		eps := make([]float32, len(x))
		for j := range x {
			eps[j] = float32((float64(x[j]) - math.Sqrt(a)*float64(x0[j])) / math.Sqrt(1-a))
		}
		return eps, nil
	}
	out, err := Sample(context.Background(), smp, oracle, rng.New(23).Randn(64), func(step, _ int, _, den []float32) {
		for j := range den {
			if d := math.Abs(float64(den[j] - x0[j])); d > 1e-3 {
				t.Fatalf("step %d: estimate[%d] = %g, clean latent %g", step, j, den[j], x0[j])
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for j := range out {
		if d := math.Abs(float64(out[j] - x0[j])); d > 1e-3 {
			t.Fatalf("output[%d] = %g, clean latent %g", j, out[j], x0[j])
		}
	}
}
