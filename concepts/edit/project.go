package edit

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Project is one edited projection of spec §3.2, folded form:
// y = x′ Wᵀ + Σ_c g_c ⊗ o*_c, for x′ [B, T, D] (the folded context, see
// Fold), w [O, D], and per concept c a gate g_c [B, T] (see Gate) and a
// target o*_c, either one vector [O] for every position (what concepts
// store, one per layer) or one row per position [T, O] (the per-position
// form of the reference implementation). y is [B, T, O].
//
// Backward: dx′ = dy W, dg_c[b,n] = dy[b,n]·o*_c[n], do*_c = Σ g_c dy (over
// b and n for a broadcast target, over b per position otherwise), and dW =
// dyᵀ x′; each only for operands that require gradients.
func Project(e *ops.Engine, x, w tensor.Tensor, gates, targets []tensor.Tensor) (tensor.Tensor, error) {
	if !w.Valid() || w.Rank() != 2 {
		return tensor.Tensor{}, fmt.Errorf("edit: project: weight %v, want [O, D]", w)
	}
	if err := checkContext("project", x, w.Dim(1)); err != nil {
		return tensor.Tensor{}, err
	}
	b, t, o := x.Dim(0), x.Dim(1), w.Dim(0)
	if len(gates) != len(targets) {
		return tensor.Tensor{}, fmt.Errorf("edit: project: %d gates and %d targets", len(gates), len(targets))
	}
	perPos := make([]bool, len(targets))
	for c := range gates {
		g, tg := gates[c], targets[c]
		if !g.Valid() || g.Rank() != 2 || g.Dim(0) != b || g.Dim(1) != t {
			return tensor.Tensor{}, fmt.Errorf("edit: project: gate %d is %v, want [%d, %d]", c, g, b, t)
		}
		switch {
		case tg.Valid() && tg.Rank() == 1 && tg.Dim(0) == o:
		case tg.Valid() && tg.Rank() == 2 && tg.Dim(0) == t && tg.Dim(1) == o:
			perPos[c] = true
		default:
			return tensor.Tensor{}, fmt.Errorf("edit: project: target %d is %v, want [%d] or [%d, %d]", c, tg, o, t, o)
		}
	}
	f := &project{e: e, x: x, w: w, gates: gates, targets: targets, perPos: perPos, m: b * t, t: t, d: w.Dim(1), o: o}
	return ops.Run(f, []int{b, t, o}, ops.AnyGrad(append([]tensor.Tensor{x, w}, append(gates, targets...)...)...))
}

type project struct {
	e              *ops.Engine
	x, w           tensor.Tensor   // [M, D], [O, D]
	gates, targets []tensor.Tensor // per concept: [M], [O] or [T, O]
	perPos         []bool          // targets[c] is [T, O]
	m, t, d, o     int             // M = B*T rows
}

func (f *project) Operands() []mat.Tensor {
	return ops.Operands(append([]tensor.Tensor{f.x, f.w}, append(f.gates, f.targets...)...)...)
}

// target returns concept c's target row for row r of the context.
func (f *project) target(c, r int, tg []float32) []float32 {
	if f.perPos[c] {
		n := r % f.t
		return tg[n*f.o : (n+1)*f.o]
	}
	return tg
}

func (f *project) Forward() (mat.Tensor, error) {
	y := make([]float32, f.m*f.o) // [M, O]
	if f.m == 0 || f.o == 0 {
		return tensor.Leaf(y), nil
	}
	for c := range f.gates {
		g, tg := f.gates[c].Data(), f.targets[c].Data()
		for r, gr := range g {
			row, tr := y[r*f.o:(r+1)*f.o], f.target(c, r, tg)
			for j, v := range tr {
				row[j] += gr * v
			}
		}
	}
	beta := float32(0) // plain GEMM when there is nothing to keep
	if len(f.gates) > 0 {
		beta = 1
	}
	f.e.B.Gemm(false, true, f.m, f.o, f.d, 1, f.x.Data(), f.d, f.w.Data(), f.d, beta, y, f.o)
	return tensor.Leaf(y), nil
}

func (f *project) Backward(gy mat.Tensor) error {
	dy := tensor.Float32s(gy) // [M, O]
	if f.x.RequiresGrad() {
		dx := make([]float32, f.m*f.d) // [M, D] = dy W
		f.e.B.Gemm(false, false, f.m, f.d, f.o, 1, dy, f.o, f.w.Data(), f.d, 0, dx, f.d)
		tensor.AccGrad(f.x.Node(), dx)
	}
	if f.w.RequiresGrad() {
		dw := make([]float32, f.o*f.d) // [O, D] = dyᵀ x
		f.e.B.Gemm(true, false, f.o, f.d, f.m, 1, dy, f.o, f.x.Data(), f.d, 0, dw, f.d)
		tensor.AccGrad(f.w.Node(), dw)
	}
	for c := range f.gates {
		gt, tt := f.gates[c], f.targets[c]
		g, tg := gt.Data(), tt.Data()
		if gt.RequiresGrad() {
			dg := make([]float32, f.m) // [M]
			for r := range dg {
				dg[r] = float32(dot64(dy[r*f.o:(r+1)*f.o], f.target(c, r, tg)))
			}
			tensor.AccGrad(gt.Node(), dg)
		}
		if tt.RequiresGrad() {
			acc := make([]float64, len(tg)) // [O] or [T, O]
			for r, gr := range g {
				dr := dy[r*f.o : (r+1)*f.o]
				off := 0
				if f.perPos[c] {
					off = (r % f.t) * f.o
				}
				for j, v := range dr {
					acc[off+j] += float64(gr) * float64(v)
				}
			}
			dt := make([]float32, len(acc))
			for i, v := range acc {
				dt[i] = float32(v)
			}
			tensor.AccGrad(tt.Node(), dt)
		}
	}
	return nil
}
