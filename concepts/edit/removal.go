package edit

import (
	"fmt"
	"math"
)

// Multi selects how several concepts share the context (spec §3.5).
type Multi int

const (
	// Sum removes each concept's part along its own i* independently:
	// e′ = e − Σ_c s_c i*_c (the approximate form, which the first author
	// recommends).
	Sum Multi = iota
	// Exact removes the C⁻¹-orthogonal projection of e onto span{i*_c}
	// (Appendix B), through a C⁻¹-orthonormal basis built by Gram–Schmidt.
	// It equals Sum when the i*s are C⁻¹-orthogonal.
	Exact
)

// String names the form as the command line does ("sum", "exact").
func (m Multi) String() string {
	if m == Exact {
		return "exact"
	}
	return "sum"
}

// gating is what the context transform needs of one concept.
type gating struct {
	input     []float32 // i* [D]
	u         []float64 // C⁻¹ i* [D]
	energy    float64   // E = i*ᵀ C⁻¹ i*
	w         []float32 // u / E: s_n = e_n·w
	beta, tau float32
}

// newGating computes u, E and the similarity weight of i* under m.
func newGating(name string, input []float32, m Metric, beta, tau float32) (*gating, error) {
	in := make([]float64, len(input))
	for i, v := range input {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("edit: concept %q: i* has a non-finite value", name)
		}
		in[i] = float64(v)
	}
	u := m.MulInverse(in)
	if len(u) != len(in) {
		return nil, fmt.Errorf("edit: concept %q: i* has %d values, the metric another width", name, len(in))
	}
	var e float64
	for i, v := range in {
		e += v * u[i]
	}
	if !(e > 0) || math.IsInf(e, 0) {
		return nil, fmt.Errorf("edit: concept %q: i*ᵀC⁻¹i* = %g, want > 0 (is C⁻¹ positive-definite and i* non-zero?)", name, e)
	}
	w := make([]float32, len(u))
	for i, v := range u {
		w[i] = float32(v / e)
	}
	return &gating{input: input, u: u, energy: e, w: w, beta: beta, tau: tau}, nil
}

// removal returns the Fold pairs (directions, weights) that take the
// concepts' parts out of an encoding in the chosen form.
func removal(gs []*gating, names []string, multi Multi) (dirs, weights [][]float32, err error) {
	if multi != Exact || len(gs) == 1 {
		for _, g := range gs {
			dirs = append(dirs, g.input)
			weights = append(weights, g.w)
		}
		return dirs, weights, nil
	}
	basis, cbasis, err := orthonormal(gs, names)
	if err != nil {
		return nil, nil, err
	}
	for k := range basis {
		dirs = append(dirs, to32(basis[k]))
		weights = append(weights, to32(cbasis[k]))
	}
	return dirs, weights, nil
}

// orthonormal runs Gram–Schmidt on the concepts' i* in the inner product
// ⟨a, b⟩ = aᵀC⁻¹b, using only u = C⁻¹i*: it returns the basis b_k
// (⟨b_j, b_k⟩ = δ_jk) and C⁻¹b_k, both as combinations of the i* and u.
func orthonormal(gs []*gating, names []string) (basis, cbasis [][]float64, err error) {
	for k, g := range gs {
		v := make([]float64, len(g.u))       // i*_k − Σ_j b_j ⟨b_j, i*_k⟩
		cv := append([]float64(nil), g.u...) // C⁻¹ v
		for i, x := range g.input {
			v[i] = float64(x)
		}
		for pass := 0; pass < 2; pass++ { // twice: classical Gram–Schmidt, reorthogonalised
			for j := range basis {
				var c float64 // ⟨b_j, v⟩ = (C⁻¹b_j)·v
				for i, x := range v {
					c += cbasis[j][i] * x
				}
				for i := range v {
					v[i] -= c * basis[j][i]
					cv[i] -= c * cbasis[j][i]
				}
			}
		}
		var n2 float64
		for i, x := range v {
			n2 += x * cv[i]
		}
		if !(n2 > 1e-8*g.energy) {
			return nil, nil, fmt.Errorf("edit: concept %q: its i* is (nearly) a combination of the other concepts' (exact form); use the sum form", names[k])
		}
		n := math.Sqrt(n2)
		for i := range v {
			v[i] /= n
			cv[i] /= n
		}
		basis, cbasis = append(basis, v), append(cbasis, cv)
	}
	return basis, cbasis, nil
}

func to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
