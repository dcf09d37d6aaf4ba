package hugepages

import "testing"

// Advise is only a hint: buffers of any size and alignment stay
// ordinary memory that reads back what was written.
func TestAdviseHuge(t *testing.T) {
	for _, n := range []int{0, 1, Min / 4, Min/4 + 3, 3 * Min / 4} {
		b := make([]float32, n)
		if n > 0 {
			b = b[1:] // unaligned start
		}
		Advise(b)
		for i := range b {
			b[i] = float32(i)
		}
		for i, v := range b {
			if v != float32(i) {
				t.Fatalf("n=%d: b[%d] = %g after advice", n, i, v)
			}
		}
	}
}
