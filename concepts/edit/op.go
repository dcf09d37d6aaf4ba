package edit

import (
	"fmt"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// dot64 is a·b accumulated in float64.
func dot64(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s
}

// checkContext checks that x is a [B, T, D] context.
func checkContext(op string, x tensor.Tensor, d int) error {
	if !x.Valid() || x.Rank() != 3 || x.Dim(2) != d || x.Size() == 0 {
		return fmt.Errorf("edit: %s: context %v, want [B, T, %d]", op, x, d)
	}
	return nil
}
