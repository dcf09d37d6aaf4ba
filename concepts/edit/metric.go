package edit

import (
	"fmt"
	"math"
)

// Metric gives the edit the inverse covariance C⁻¹ of text encodings
// (spec §4): MulInverse returns C⁻¹v for v of the text width D (nil if v
// has another length). The covariance package satisfies it; DenseMetric
// is a plain matrix.
type Metric interface {
	MulInverse(v []float64) []float64
}

// DenseMetric is a Metric from a given C⁻¹ matrix [D, D] (row-major).
type DenseMetric struct {
	inv []float64
	d   int
}

// NewDenseMetric wraps inv (not copied) as C⁻¹ [d, d]. The matrix must be
// finite and symmetric (to a relative 1e-4, what a float32 copy keeps);
// positive-definiteness shows later, as a non-positive i*ᵀC⁻¹i*.
func NewDenseMetric(inv []float64, d int) (*DenseMetric, error) {
	if d <= 0 || len(inv) != d*d {
		return nil, fmt.Errorf("edit: C⁻¹ of %d values for width %d, want %d", len(inv), d, d*d)
	}
	scale := 0.0
	for _, v := range inv {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("edit: C⁻¹ has a non-finite value")
		}
		scale = max(scale, math.Abs(v))
	}
	for i := range d {
		for j := range i {
			if math.Abs(inv[i*d+j]-inv[j*d+i]) > 1e-4*scale {
				return nil, fmt.Errorf("edit: C⁻¹ is not symmetric at (%d, %d): %g vs %g", i, j, inv[i*d+j], inv[j*d+i])
			}
		}
	}
	return &DenseMetric{inv: inv, d: d}, nil
}

// NewDenseMetric32 is NewDenseMetric for a float32 matrix (copied).
func NewDenseMetric32(inv []float32, d int) (*DenseMetric, error) {
	w := make([]float64, len(inv))
	for i, v := range inv {
		w[i] = float64(v)
	}
	return NewDenseMetric(w, d)
}

// MulInverse returns C⁻¹v, or nil if v does not have D values.
func (m *DenseMetric) MulInverse(v []float64) []float64 {
	if len(v) != m.d {
		return nil
	}
	out := make([]float64, m.d)
	for i := range out {
		var s float64
		for j, x := range m.inv[i*m.d : (i+1)*m.d] {
			s += x * v[j]
		}
		out[i] = s
	}
	return out
}
