package wino

import (
	"fmt"
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

// Row lengths cover the vector kernels' whole groups (8 tiles with AVX2,
// 16 with AVX-512, then 8 of the rest), a rest and none.
var rowLens = []int{1, 5, 7, 8, 9, 15, 16, 17, 24, 35, 41, 48}

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

// TestTurned checks Turned against the float64 transform of filters
// turned half a turn, and that it is a permutation (its own inverse).
func TestTurned(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n = 5
	w := randVec(r, 9*n)
	u := make([]float32, 16*n)
	Filters(u, n, w, 9, 3, n)
	for f := range n {
		for k := range 16 {
			if Turned(Turned(k)) != k {
				t.Fatalf("Turned(Turned(%d)) = %d", k, Turned(Turned(k)))
			}
			i, j := k/4, k%4
			var want float64 // (G g' Gᵀ)[i][j], g'[p][q] = g[2-p][2-q]
			for p := range 3 {
				for q := range 3 {
					want += gm[i][p] * float64(w[f*9+(2-p)*3+2-q]) * gm[j][q]
				}
			}
			near(t, fmt.Sprintf("turned filter %d position %d", f, k), u[Turned(k)*n+f], want)
		}
	}
}

// vecModes runs f once for each set of vector kernels this CPU has (the
// AVX-512 and AVX2 ones together, AVX2 alone, none), restoring the
// detected ones after.
func vecModes(t testing.TB, f func(mode string)) {
	t.Helper()
	h512, h2 := hasAVX512, hasAVX2
	defer func() { hasAVX512, hasAVX2 = h512, h2 }()
	if h512 {
		f("avx512+avx2")
	}
	hasAVX512 = false
	if h2 {
		f("avx2")
	}
	hasAVX2 = false
	f("go")
}

// TestInputRowVec checks that the vector kernels give exactly the Go
// loop's values, bit for bit (same operations in the same order), on row
// lengths around their group sizes and with padding between positions.
func TestInputRowVec(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	vecModes(t, func(mode string) {
		for n := 1; n <= 70; n++ {
			ld := n + n%3
			var rows [4][]float32
			for i := range rows {
				rows[i] = randVec(r, 2*n+2)
			}
			got := randVec(r, 16*ld+8)
			want := append([]float32(nil), got...) // gaps and the 8 past the end must stay
			InputRow(got, ld, rows[0], rows[1], rows[2], rows[3], n)
			inputRowGo(want, ld, rows[0], rows[1], rows[2], rows[3], n)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s n %d: v[%d] = %g, Go loop %g", mode, n, i, got[i], want[i])
				}
			}
		}
	})
}

// TestOutputRowVec is TestInputRowVec for OutputRow, with and without the
// second row and adding, on even and odd output widths.
func TestOutputRowVec(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	vecModes(t, func(mode string) {
		for n := 1; n <= 70; n++ {
			for _, wo := range []int{2 * n, 2*n - 1} {
				for _, two := range []bool{true, false} {
					for _, add := range []bool{false, true} {
						ld := n + n%3
						m := randVec(r, 16*ld)
						y := [2][]float32{randVec(r, wo+1), randVec(r, wo+1)} // one past wo: must stay
						want := [2][]float32{append([]float32(nil), y[0]...), append([]float32(nil), y[1]...)}
						p1, w1 := y[1][:wo], want[1][:wo]
						if !two {
							p1, w1 = nil, nil
						}
						OutputRow(y[0][:wo], p1, wo, m, ld, n, add)
						outputRowGo(want[0][:wo], w1, wo, m, ld, n, add)
						for i := range y {
							for x := range y[i] {
								if math.Float32bits(y[i][x]) != math.Float32bits(want[i][x]) {
									t.Fatalf("%s n %d wo %d two %v add %v: y%d[%d] = %g, Go loop %g",
										mode, n, wo, two, add, i, x, y[i][x], want[i][x])
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestVecUsed checks that the vector kernels run where the CPU has them,
// so that the tests above compare them with the Go loops there.
func TestVecUsed(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2: the Go loops are the only ones")
	}
	const n = 24
	rows := make([]float32, 2*n+2)
	v := make([]float32, 16*(n+16))
	if got := inputRowVec(v, n, rows, rows, rows, rows, n); got != n {
		t.Errorf("inputRowVec did %d tiles of %d", got, n)
	}
	y := make([]float32, 2*n)
	if got := outputRowVec(y, y, 2*n, v, n, n, false); got != n {
		t.Errorf("outputRowVec did %d tiles of %d", got, n)
	}
}

// BenchmarkInputRow transforms a row of n tiles with the vector kernels
// ("vec": what InputRow runs on this CPU) and with the Go loop ("go"):
// 32 tiles stay in L1, 1024 (64 KiB out) in L2, 8192 (512 KiB) do not.
// Positions are n+16 apart, skewed as the ops package lays them out.
func BenchmarkInputRow(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{32, 1024, 8192} {
		var rows [4][]float32
		for i := range rows {
			rows[i] = randVec(r, 2*n+2)
		}
		v := make([]float32, 16*(n+16))
		for _, impl := range []struct {
			name string
			fn   func(v []float32, ldk int, r0, r1, r2, r3 []float32, n int)
		}{{"vec", InputRow}, {"go", inputRowGo}} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, n), func(b *testing.B) {
				b.SetBytes(int64(4 * (16*n + 4*(2*n+2)))) // written + read
				for b.Loop() {
					impl.fn(v, n+16, rows[0], rows[1], rows[2], rows[3], n)
				}
			})
		}
	}
}

// BenchmarkOutputRow is BenchmarkInputRow for OutputRow, two rows added to.
func BenchmarkOutputRow(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, n := range []int{32, 1024, 8192} {
		m := randVec(r, 16*(n+16))
		y0, y1 := randVec(r, 2*n), randVec(r, 2*n)
		for _, impl := range []struct {
			name string
			fn   func(y0, y1 []float32, wo int, m []float32, ldk int, n int, add bool)
		}{{"vec", OutputRow}, {"go", outputRowGo}} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, n), func(b *testing.B) {
				b.SetBytes(int64(4 * (16*n + 2*2*2*n))) // read m and y, written y
				for b.Loop() {
					impl.fn(y0, y1, 2*n, m, n+16, n, true)
				}
			})
		}
	}
}
