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

func serial(n, _ int, fn func(lo, hi int)) { fn(0, n) }

// TestOHIW checks ToOHIW against index arithmetic and FromOHIW as its
// inverse, for kernel widths with and without the 3-wide fast path.
func TestOHIW(t *testing.T) {
	for _, k := range [][2]int{{3, 3}, {1, 1}, {1, 3}, {3, 1}, {5, 2}, {2, 3}} {
		g := Geom{O: 3, C: 4, KH: k[0], KW: k[1]}
		n := g.O * g.C * g.KH * g.KW
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(i + 1)
		}
		p := make([]float32, n)
		ToOHIW(serial, p, w, g)
		for o := 0; o < g.O; o++ {
			for c := 0; c < g.C; c++ {
				for kh := 0; kh < g.KH; kh++ {
					for kw := 0; kw < g.KW; kw++ {
						got := p[((o*g.KH+kh)*g.C+c)*g.KW+kw]
						if want := w[((o*g.C+c)*g.KH+kh)*g.KW+kw]; got != want {
							t.Fatalf("%v: OHIW[%d,%d,%d,%d] = %v, want %v", k, o, kh, c, kw, got, want)
						}
					}
				}
			}
		}
		back := make([]float32, n)
		FromOHIW(serial, back, p, g)
		for i := range w {
			if back[i] != w[i] {
				t.Fatalf("%v: FromOHIW(ToOHIW(w))[%d] = %v, want %v", k, i, back[i], w[i])
			}
		}
	}
}
