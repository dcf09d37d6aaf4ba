package unet

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// Test backends wrapping a real one, for the batch tests.

// gemmRef computes element (i, j) of alpha*op(A)*op(B) + beta*C in float64,
// summing over p in index order, with the sum of the absolute values of
// its terms (the scale of its float32 rounding error).
func gemmRef(transA, transB bool, i, j, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c float32) (v, abs float64) {
	var s, sa float64
	for p := range k {
		ai, bi := i*lda+p, p*ldb+j
		if transA {
			ai = p*lda + i
		}
		if transB {
			bi = j*ldb + p
		}
		s += float64(a[ai]) * float64(b[bi])
		sa += math.Abs(float64(a[ai]) * float64(b[bi]))
	}
	v, abs = float64(alpha)*s, math.Abs(float64(alpha))*sa
	if beta != 0 {
		v += float64(beta) * float64(c)
		abs += math.Abs(float64(beta) * float64(c))
	}
	return v, abs
}

// roundOnce is a backend whose Gemm rounds each element of C once from a
// float64 sum taken in index order. Each element then depends only on its
// own row of op(A) and column of op(B), never on m, n or blocking, so
// model code that keeps batch items apart gives a batch of two that is bit
// for bit the batch of one, whatever the latent size.
type roundOnce struct{ backend.Backend }

func (roundOnce) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := range m {
		for j := range n {
			v, _ := gemmRef(transA, transB, i, j, k, alpha, a, lda, b, ldb, beta, c[i*ldc+j])
			c[i*ldc+j] = float32(v)
		}
	}
}

// noisy is a backend whose Gemm moves each element of the round-once
// result by a random amount up to 4 u sum|terms|, u = 2^-24: rounding
// noise somewhat larger than a correct float32 GEMM's (see checked), at
// every GEMM of a forward pass. How far that moves a model's output is
// the float32 noise floor of the output.
type noisy struct {
	backend.Backend

	mu  sync.Mutex
	rng *rand.Rand
}

func newNoisy(b backend.Backend, seed uint64) *noisy {
	return &noisy{Backend: b, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (g *noisy) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range m {
		for j := range n {
			v, abs := gemmRef(transA, transB, i, j, k, alpha, a, lda, b, ldb, beta, c[i*ldc+j])
			c[i*ldc+j] = float32(v + (2*g.rng.Float64()-1)*4*0x1p-24*abs)
		}
	}
}

// checked is a backend that checks every Gemm of the backend it wraps
// against float64, with the worst-case bound of any float32 summation
// order, plus the alpha and beta roundings: |c - ref| <= (k+4) u
// sum|terms|, u = 2^-24. A correct GEMM stays well inside it (at most
// 6 u sum|terms| was seen under every OpenBLAS core type); a wrong result
// for some shape (a kernel bug) is off by about sum|terms| itself.
type checked struct {
	backend.Backend

	mu    sync.Mutex
	calls int
	bad   []string // the failing calls, described
}

func (g *checked) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	c0 := append([]float32(nil), c...)
	g.Backend.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	worst, wi, wj := 0.0, 0, 0
	for i := range m {
		for j := range n {
			v, abs := gemmRef(transA, transB, i, j, k, alpha, a, lda, b, ldb, beta, c0[i*ldc+j])
			bound := float64(k+4)*0x1p-24*abs + 1e-30
			if r := math.Abs(float64(c[i*ldc+j])-v) / bound; !(r <= worst) {
				worst, wi, wj = r, i, j
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if !(worst <= 1) {
		g.bad = append(g.bad, fmt.Sprintf("Gemm(transA=%v, transB=%v, m=%d, n=%d, k=%d, alpha=%g, lda=%d, ldb=%d, beta=%g, ldc=%d): C[%d][%d] off by %.3g times the rounding bound",
			transA, transB, m, n, k, alpha, lda, ldb, beta, ldc, wi, wj, worst))
	}
}

// loadOn loads the golden tiny UNet on backend b.
func loadOn(t *testing.T, b backend.Backend) *Model {
	t.Helper()
	m, err := Load(ops.NewEngine(b), weights.Safetensors(golden.Open(t, "tiny_unet.safetensors")), goldenConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Every GEMM the UNet asks of the default backend at the batch test's
// latent sizes, batch one and two, is right to float32 rounding: a BLAS
// kernel that is wrong for some of these shapes (under whichever
// OPENBLAS_CORETYPE runs) fails here, naming the call.
func TestBackendGemmAtBatchShapes(t *testing.T) {
	g := &checked{Backend: cpu.New()}
	m := loadOn(t, g)
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := batchSizes
	if testing.Short() {
		sizes = sizes[:2] // a regular and a degenerate size
	}
	for _, hw := range sizes {
		in := newBatchInputs(rng, m.Config, hw[0], hw[1])
		for _, b := range []int{1, 2} {
			if _, err := m.Forward(context.Background(), in.x(b), in.timesteps(b), in.context(b, 0)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%s: %d GEMM calls checked", g.Name(), g.calls)
	for _, s := range g.bad[:min(len(g.bad), 10)] {
		t.Error(s)
	}
}

// The checker itself fails a GEMM that is wrong for one shape.
func TestCheckedBackendCatchesWrongGemm(t *testing.T) {
	g := &checked{Backend: wrongAt{Backend: cpu.NewGo(), m: 3}}
	a, b, c := make([]float32, 3*5), make([]float32, 5*4), make([]float32, 3*4)
	for i := range a {
		a[i] = float32(i%7) - 3
	}
	for i := range b {
		b[i] = float32(i%5) - 2
	}
	g.Gemm(false, false, 2, 4, 5, 1, a, 5, b, 4, 0, c, 4)
	if len(g.bad) != 0 {
		t.Fatalf("a right GEMM was failed: %v", g.bad)
	}
	g.Gemm(false, false, 3, 4, 5, 1, a, 5, b, 4, 0, c, 4)
	if len(g.bad) != 1 {
		t.Fatalf("a wrong GEMM was not failed (%d failures)", len(g.bad))
	}
}

// wrongAt is a backend whose Gemm is off by a little (1e-4 relative) in
// one element when C has m rows, like a kernel bug on a ragged edge.
type wrongAt struct {
	backend.Backend
	m int
}

func (w wrongAt) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	w.Backend.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	if m == w.m {
		c[(m-1)*ldc+n-1] += 1e-4 * (1 + float32(math.Abs(float64(c[(m-1)*ldc+n-1]))))
	}
}
