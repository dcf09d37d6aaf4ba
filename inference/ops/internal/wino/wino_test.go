package wino

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The transforms' matrices, for the float64 references.
var (
	bt = [4][4]float64{{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}}
	gm = [4][3]float64{{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}}
	at = [2][4]float64{{1, 1, 1, 0}, {0, 1, -1, -1}}
)

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func near(t *testing.T, what string, got float32, want float64) {
	t.Helper()
	if d := math.Abs(float64(got) - want); !(d <= 1e-6*(1+math.Abs(want))) {
		t.Fatalf("%s: got %g, want %g", what, got, want)
	}
}

// Row lengths cover the vector kernels' whole groups, a rest and none.
var rowLens = []int{1, 5, 16, 17, 35, 48}

func TestInputRow(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range rowLens {
		ld := n + 3
		var rows [4][]float32
		for i := range rows {
			rows[i] = randVec(r, 2*n+2)
		}
		v := make([]float32, 16*ld)
		InputRow(v, ld, rows[0], rows[1], rows[2], rows[3], n)
		for tile := range n {
			for i := range 4 {
				for j := range 4 {
					var want float64 // (Bᵀ d B)[i][j]
					for p := range 4 {
						for q := range 4 {
							want += bt[i][p] * float64(rows[p][2*tile+q]) * bt[j][q]
						}
					}
					near(t, "input", v[(4*i+j)*ld+tile], want)
				}
			}
		}
	}
}

func TestOutputRow(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range rowLens {
		for _, wo := range []int{2 * n, 2*n - 1} {
			for _, two := range []bool{true, false} {
				for _, add := range []bool{false, true} {
					ld := n + 2
					m := randVec(r, 16*ld)
					y0, y1 := randVec(r, wo+1), randVec(r, wo+1) // one past wo: must stay
					old0, old1 := append([]float32(nil), y0...), append([]float32(nil), y1...)
					var p1 []float32
					if two {
						p1 = y1[:wo]
					}
					OutputRow(y0[:wo], p1, wo, m, ld, n, add)
					for i, y := range [][]float32{y0, y1} {
						old := [][]float32{old0, old1}[i]
						for x := range wo + 1 {
							want := float64(old[x])
							if x < wo && (i == 0 || two) {
								tile, j := x/2, x%2
								var s float64 // (Aᵀ m A)[i][j]
								for p := range 4 {
									for q := range 4 {
										s += at[i][p] * float64(m[(4*p+q)*ld+tile]) * at[j][q]
									}
								}
								if add {
									want += s
								} else {
									want = s
								}
							}
							near(t, "output", y[x], want)
						}
					}
				}
			}
		}
	}
}

func TestFilter(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const n, ldw, rs, ldk = 3, 20, 5, 4 // filters at w[f*20 + kh*5 + kw]
	w := randVec(r, n*ldw)
	u := make([]float32, 16*ldk)
	Filters(u, ldk, w, ldw, rs, n)
	for f := range n {
		for i := range 4 {
			for j := range 4 {
				var want float64 // (G g Gᵀ)[i][j]
				for p := range 3 {
					for q := range 3 {
						want += gm[i][p] * float64(w[f*ldw+p*rs+q]) * gm[j][q]
					}
				}
				near(t, "filter", u[(4*i+j)*ldk+f], want)
			}
		}
	}
}
