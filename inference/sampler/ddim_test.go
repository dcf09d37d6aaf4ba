package sampler

import (
	"slices"
	"testing"
)

// compVisTimesteps is make_ddim_timesteps("uniform") written plainly:
// range(0, T, T // n) + 1, and whether the reference can index them all.
func compVisTimesteps(T, n int) (ts []int, ok bool) {
	c := T / n
	for t := 0; t < T; t += c {
		ts = append(ts, t+1)
	}
	return ts, ts[len(ts)-1] < T
}

// Every step count from 1 to T gives a strictly increasing schedule inside
// [1, T-1]: the reference's exactly where it works, and the reference's
// without its one out-of-range timestep T where it fails.
func TestDDIMScheduleAllSteps(t *testing.T) {
	s := SD15()
	T := s.T()
	failing := 0
	for n := 1; n <= T; n++ {
		p, err := NewDDIMSchedule(s, n)
		if err != nil {
			t.Fatalf("N=%d: %v", n, err)
		}
		ref, ok := compVisTimesteps(T, n)
		want := ref
		if !ok {
			failing++
			want = ref[:len(ref)-1]
			if ref[len(ref)-1] != T {
				t.Fatalf("N=%d: the reference's last timestep %d, want %d", n, ref[len(ref)-1], T)
			}
		}
		if !slices.Equal(p.Timesteps, want) {
			t.Fatalf("N=%d: timesteps %v, want %v", n, p.Timesteps, want)
		}
		k := len(p.Timesteps)
		if k == 0 || p.Timesteps[0] != 1 || p.Timesteps[k-1] > T-1 {
			t.Fatalf("N=%d: timesteps %v outside [1, %d]", n, p.Timesteps, T-1)
		}
		for i := 1; i < k; i++ {
			if p.Timesteps[i] <= p.Timesteps[i-1] {
				t.Fatalf("N=%d: timesteps not increasing at %d: %v", n, i, p.Timesteps)
			}
		}
		if len(p.Alphas) != k || len(p.AlphasPrev) != k || len(p.SqrtOneMinusAlphas) != k {
			t.Fatalf("N=%d: parameter lengths %d %d %d, want %d", n, len(p.Alphas), len(p.AlphasPrev), len(p.SqrtOneMinusAlphas), k)
		}
		for i, ts := range p.Timesteps {
			if p.Alphas[i] != s.AlphasCumprod[ts] {
				t.Fatalf("N=%d: alpha %d = %g, want acp[%d] = %g", n, i, p.Alphas[i], ts, s.AlphasCumprod[ts])
			}
		}
		smp, err := New("ddim", s, n, nil)
		if err != nil {
			t.Fatalf("N=%d: New: %v", n, err)
		}
		if got := smp.Timesteps(); len(got) != k || got[0] != float64(p.Timesteps[k-1]) {
			t.Fatalf("N=%d: sampler timesteps %v", n, got)
		}
	}
	// Counted from T's divisors: T/n divides 999 for n = 3, 9, 27, 36, 37,
	// 101..111, 251..333 and 501..1000.
	if want := 1 + 1 + 1 + 2 + 11 + 83 + 500; failing != want {
		t.Errorf("%d step counts hit timestep %d, want %d", failing, T, want)
	}
	for _, tc := range []struct{ n, steps int }{{3, 3}, {9, 9}, {27, 27}, {36, 37}, {37, 37}, {101, 111}, {333, 333}, {1000, 999}, {7, 8}, {4, 4}} {
		p, _ := NewDDIMSchedule(s, tc.n)
		if len(p.Timesteps) != tc.steps {
			t.Errorf("N=%d: %d steps, want %d", tc.n, len(p.Timesteps), tc.steps)
		}
	}
	for _, n := range []int{0, -1, T + 1} {
		if _, err := NewDDIMSchedule(s, n); err == nil {
			t.Errorf("N=%d accepted", n)
		}
	}
}
