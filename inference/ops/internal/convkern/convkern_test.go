package convkern

import "testing"

func TestValidRange(t *testing.T) {
	for n := 0; n < 9; n++ {
		for s := 1; s < 4; s++ {
			for off := -5; off < 6; off++ {
				for size := 0; size < 8; size++ {
					lo, hi := validRange(n, s, off, size)
					for j := 0; j < n; j++ {
						in := j*s+off >= 0 && j*s+off < size
						if in != (j >= lo && j < hi) {
							t.Fatalf("validRange(%d, %d, %d, %d) = [%d, %d), wrong at j=%d", n, s, off, size, lo, hi, j)
						}
					}
					if lo > hi {
						t.Fatalf("validRange(%d, %d, %d, %d) = [%d, %d)", n, s, off, size, lo, hi)
					}
				}
			}
		}
	}
}
