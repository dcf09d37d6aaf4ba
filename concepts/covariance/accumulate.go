package covariance

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// chunkTokens is how many tokens one rank-k update takes: the transposed
// chunk [D, chunkTokens] float64 (768 KB at D = 768) stays in cache while
// every block of the triangle reads it.
const chunkTokens = 128

// block is the side of the register tile of the rank-k kernel.
const block = 4

// Accumulator sums the uncentered second moment Σ e eᵀ of text encodings
// in float64. Each element of the sum is added up in the order the tokens
// came, whatever the number of workers, so results are reproducible.
type Accumulator struct {
	d        int
	workers  int
	sum      []float64 // [D, D], upper triangle (i <= j) only
	captions int
	tokens   int64
	xt       []float64 // scratch: one chunk transposed [D, chunkTokens]
}

// NewAccumulator returns an empty accumulator for width d that splits each
// update over workers goroutines (0: GOMAXPROCS).
func NewAccumulator(d, workers int) (*Accumulator, error) {
	if d <= 0 {
		return nil, fmt.Errorf("covariance: width %d, want > 0", d)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Accumulator{d: d, workers: workers, sum: make([]float64, d*d), xt: make([]float64, d*chunkTokens)}, nil
}

// Add adds the encodings enc [tokens, D] of captions captions: every token
// row e adds e eᵀ. Non-finite values are refused (nothing is added).
func (a *Accumulator) Add(enc []float32, captions int) error {
	d := a.d
	if len(enc)%d != 0 || captions < 0 {
		return fmt.Errorf("covariance: %d values are not rows of width %d (captions %d)", len(enc), d, captions)
	}
	for i, v := range enc {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("covariance: encoding value %d (token %d) is %v", i, i/d, v)
		}
	}
	for lo := 0; lo < len(enc); lo += chunkTokens * d {
		rows := enc[lo:min(len(enc), lo+chunkTokens*d)]
		a.addChunk(rows, len(rows)/d)
	}
	a.captions += captions
	a.tokens += int64(len(enc) / d)
	return nil
}

// Captions and Tokens say how much has been added.
func (a *Accumulator) Captions() int { return a.captions }
func (a *Accumulator) Tokens() int64 { return a.tokens }
func (a *Accumulator) Width() int    { return a.d }

// Matrix returns C = (1/captions) Σ e eᵀ [D, D] (full, symmetric).
func (a *Accumulator) Matrix() ([]float64, error) {
	if a.captions == 0 {
		return nil, fmt.Errorf("covariance: no captions added")
	}
	d := a.d
	c := make([]float64, d*d)
	s := 1 / float64(a.captions)
	for i := range d {
		for j := i; j < d; j++ {
			v := a.sum[i*d+j] * s
			c[i*d+j], c[j*d+i] = v, v
		}
	}
	return c, nil
}

// addChunk adds k token rows (k <= chunkTokens): sum[i, j] += Σ_t x[t, i] x[t, j]
// for i <= j, as a symmetric rank-k update on the transposed chunk.
func (a *Accumulator) addChunk(rows []float32, k int) {
	d := a.d
	xt := a.xt[:d*k]
	for t := range k {
		r := rows[t*d : (t+1)*d]
		for i, v := range r {
			xt[i*k+t] = float64(v) // exact: a float32 product fits a float64
		}
	}
	nb := (d + block - 1) / block
	var next atomic.Int64
	work := func() {
		for {
			b := int(next.Add(1) - 1)
			if b >= nb {
				return
			}
			a.rowBlock(xt, k, b*block)
		}
	}
	w := min(a.workers, nb)
	if w <= 1 {
		work()
		return
	}
	var wg sync.WaitGroup
	for range w {
		wg.Go(work)
	}
	wg.Wait()
}

// rowBlock adds the rows i0..i0+3 of the upper triangle. Blocks are handed
// out in order, so the long first rows start first and the workers finish
// close together.
func (a *Accumulator) rowBlock(xt []float64, k, i0 int) {
	d := a.d
	i1 := min(i0+block, d)
	if i1-i0 < block {
		for i := i0; i < i1; i++ {
			xi := xt[i*k : (i+1)*k]
			for j := i; j < d; j++ {
				a.sum[i*d+j] += dot(xi, xt[j*k:(j+1)*k])
			}
		}
		return
	}
	x0, x1, x2, x3 := xt[i0*k:(i0+1)*k], xt[(i0+1)*k:(i0+2)*k], xt[(i0+2)*k:(i0+3)*k], xt[(i0+3)*k:(i0+4)*k]
	// the 4×4 diagonal tile, upper part
	for i := i0; i < i1; i++ {
		for j := i; j < i1; j++ {
			a.sum[i*d+j] += dot(xt[i*k:(i+1)*k], xt[j*k:(j+1)*k])
		}
	}
	j := i1
	for ; j+block <= d; j += block {
		y0, y1, y2, y3 := xt[j*k:(j+1)*k], xt[(j+1)*k:(j+2)*k], xt[(j+2)*k:(j+3)*k], xt[(j+3)*k:(j+4)*k]
		var s [16]float64
		tile4(&s, x0, x1, x2, x3, y0, y1, y2, y3)
		for r := range block {
			row := a.sum[(i0+r)*d+j : (i0+r)*d+j+block]
			row[0] += s[r*4]
			row[1] += s[r*4+1]
			row[2] += s[r*4+2]
			row[3] += s[r*4+3]
		}
	}
	for ; j < d; j++ {
		y := xt[j*k : (j+1)*k]
		for r := range block {
			a.sum[(i0+r)*d+j] += dot(xt[(i0+r)*k:(i0+r+1)*k], y)
		}
	}
}

// tile4 computes the 4×4 dot products s[r*4+c] = x_r · y_c, as two 2×4
// register tiles (8 accumulators and 6 operands fit the 16 float
// registers of amd64; a 4×4 tile spills).
func tile4(s *[16]float64, x0, x1, x2, x3, y0, y1, y2, y3 []float64) {
	tile24((*[8]float64)(s[0:8]), x0, x1, y0, y1, y2, y3)
	tile24((*[8]float64)(s[8:16]), x2, x3, y0, y1, y2, y3)
}

// tile24 computes s[r*4+c] = x_r · y_c for two rows x and four columns y.
func tile24(s *[8]float64, x0, x1, y0, y1, y2, y3 []float64) {
	n := len(x0)
	x1 = x1[:n]
	y0, y1, y2, y3 = y0[:n], y1[:n], y2[:n], y3[:n]
	var s00, s01, s02, s03, s10, s11, s12, s13 float64
	for t := range n {
		a0, a1 := x0[t], x1[t]
		b0, b1, b2, b3 := y0[t], y1[t], y2[t], y3[t]
		s00 += a0 * b0
		s01 += a0 * b1
		s02 += a0 * b2
		s03 += a0 * b3
		s10 += a1 * b0
		s11 += a1 * b1
		s12 += a1 * b2
		s13 += a1 * b3
	}
	*s = [8]float64{s00, s01, s02, s03, s10, s11, s12, s13}
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s float64
	for i, v := range a {
		s += v * b[i]
	}
	return s
}
