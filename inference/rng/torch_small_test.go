package rng

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// torchSmall is testdata/torch_small.json, written by
// testdata/gen_torch_small.py from a real torch (2.11.0, x86-64): sequences
// of torch.randn / torch.rand calls after one torch.manual_seed, from the
// default build and from the scalar kernel (ATEN_CPU_CAPABILITY=default).
type torchSmall struct {
	DefaultBuild torchRun `json:"default_build"`
	ScalarKernel torchRun `json:"scalar_kernel"`
}

type torchRun struct {
	Torch string `json:"torch"`
	Cases []struct {
		Seed   uint64      `json:"seed"`
		Calls  [][2]any    `json:"calls"` // ["randn"|"rand", n]
		Values [][]float64 `json:"values"`
	} `json:"cases"`
}

// TestTorchSequences replays every case. Calls of fewer than 16 normals (the
// float64 scalar path with its cached second value) and torch.rand must match
// bit for bit in both builds; larger randn calls bit for bit against the
// scalar kernel and within 5e-6 (as the golden README sets for vectorised
// kernels) against the default build.
func TestTorchSequences(t *testing.T) {
	b, err := os.ReadFile("testdata/torch_small.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc torchSmall
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	small := 0
	for _, run := range []struct {
		name  string
		r     torchRun
		exact bool // exact also for the vectorised path
	}{{"scalar_kernel", doc.ScalarKernel, true}, {"default_build", doc.DefaultBuild, false}} {
		if len(run.r.Cases) == 0 {
			t.Fatalf("%s: no cases", run.name)
		}
		for ci, c := range run.r.Cases {
			g := New(c.Seed)
			for k, call := range c.Calls {
				kind, _ := call[0].(string)
				n := int(call[1].(float64))
				want := c.Values[k]
				var got []float32
				tol := 0.0
				switch kind {
				case "randn":
					got = g.Randn(n)
					if n < 16 {
						small += n
					} else if !run.exact {
						tol = 5e-6
					}
				case "rand":
					got = g.Rand(n)
				default:
					t.Fatalf("unknown call kind %q", kind)
				}
				if len(got) != len(want) {
					t.Fatalf("%s case %d call %d: %d values, want %d", run.name, ci, k, len(got), len(want))
				}
				for i := range want {
					if d := math.Abs(float64(got[i]) - want[i]); d > tol || math.IsNaN(d) {
						t.Errorf("%s case %d (seed %d) call %d %s(%d)[%d] = %.9g, want %.9g",
							run.name, ci, c.Seed, k, kind, n, i, got[i], want[i])
						break
					}
				}
			}
		}
	}
	if small == 0 {
		t.Fatal("fixture has no small-tensor calls")
	}
}
