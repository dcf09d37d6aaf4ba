package ops

import (
	"sync"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/ops/internal/convkern"
	"github.com/perfusion-studio/perfusion/inference/ops/internal/wino"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Winograd path (3x3, stride 1): F(2x2, 3x3) tiles of 2x2 outputs, 16
// multiplications per tile and input channel instead of 36 (see package
// wino). The filter is transformed once per call, u [16][O][C], and each
// u_k packed for the GEMM engine (backend.APacker); the tiles of the whole
// batch, rows of ceil(Wo/2) tiles each, are taken in blocks of whole tile
// rows: per block the inputs are transformed, v [16][C][n], the 16 GEMMs
// m_k [O, n] = u_k [O, C] v_k [C, n] run, and the output transform adds
// each tile's 2x2 values to y (which holds the bias and residual when beta
// is 1). All of it lives in the engine's winoArena. The input gradient of
// a frozen weight takes this path too (backwardWinograd); the other
// gradients take the row path.

// winoBudget bounds a block's transformed inputs and GEMM outputs (floats,
// 16 MB, as the im2col paths' column buffers): a position's [C, n] slice
// of them stays in L2 at SD's channel counts.
const winoBudget = 1 << 22

// winoMaxFilter bounds the packed transformed filter (floats, 16*C*O),
// which lives for the whole call: 128 MB takes the UNet's 1280-channel
// upsampling convolution and its 1920->640 one at 32x32 (CPU time 330 ms
// on the row path, 193 ms on this one, and 260 / 158 ms), not the wider
// 16x16-level ones (which also have too few tiles).
const winoMaxFilter = 1 << 25

// winoFilterChunk bounds the transformed filter held before packing
// (floats): 2 MB, a chunk of output channels, stays in L2 until packed.
const winoFilterChunk = 1 << 19

// winoSkew pads the stride between the 16 positions of u, v and m by a
// cache line: the transforms read or write all 16 at once, and at strides
// of a multiple of 4 KB those streams fall into the same cache sets and
// evict each other (the filter transform ran 7x slower so).
const winoSkew = 16

// winoMinChannels is the fewest input and output channels the Winograd
// path takes by default: below it the GEMMs are too thin to pay for the
// transforms (the VAE's 3-channel output, the 4-channel latent input).
const winoMinChannels = 32

// winograd reports whether Conv2D may take the Winograd path: unless
// NoWinograd, where the backend packs a GEMM operand once for many calls
// (backend.APacker). A backend that cannot (a BLAS library, which packs on
// every call) would repack the transformed filter for every block, which
// costs about as much as the path saves.
func (e *Engine) winograd() bool {
	ap, ok := e.B.(backend.APacker)
	return !e.NoWinograd && ok && ap.PackedASize(1, 1) > 0
}

// winoMinTiles is the fewest 2x2 tiles per image the Winograd path takes
// by default (a 32x32 map): the filter transform costs as much per call as
// 20-60 tiles' GEMM savings, so 640 channels on 16x16 maps (64 tiles) lose
// alone and break even at batch 2 (CPU time, row path against Winograd:
// 11.5 ms / 14.5 ms and 21 ms / 20 ms). It counts one image's tiles, not
// the batch's, so that an image takes the same path, and gives the same
// values, alone and in a batch.
const winoMinTiles = 256

// winoTiles is the number of tiles of one image of g.
func winoTiles(g convkern.Geom) int { return ((g.Ho + 1) / 2) * ((g.Wo + 1) / 2) }

// winogradFits reports whether g is a convolution the Winograd path
// computes: 3x3, stride 1, any padding.
func winogradFits(g convkern.Geom) bool { return g.S == 1 && g.KH == 3 && g.KW == 3 }

// winoTileRows is the number of tile rows per block.
func (f *conv2d) winoTileRows() int {
	budget := f.budget
	if budget == 0 {
		budget = winoBudget
	}
	g := f.g
	th, tw := (g.Ho+1)/2, (g.Wo+1)/2
	return max(1, min(g.B*th, budget/(wino.Taps*(g.C+g.O)*tw)))
}

func (f *conv2d) forwardWinograd(y []float32, beta float32) {
	g := f.g
	th, tw := (g.Ho+1)/2, (g.Wo+1)/2
	rows := f.winoTileRows()
	ap, _ := f.e.B.(backend.APacker) // winograd() made sure it packs, unless forced in a test
	fn := 0                          // floats of the filter as the GEMMs read it
	if ap != nil {
		fn = wino.Taps * ap.PackedASize(g.O, g.C)
	}
	if fn == 0 {
		ap, fn = nil, wino.Taps*(g.O*g.C+winoSkew)
	}
	vn := wino.Taps * (g.C*rows*tw + winoSkew)
	mn := wino.Taps * (g.O*rows*tw + winoSkew)
	buf, release := f.e.winoBuffer(fn + vn + mn)
	defer release()
	gemm := f.winoGEMMs(ap, buf[:fn])
	v := buf[fn : fn+vn]       // [16][C][n], position stride vk
	m := buf[fn+vn : fn+vn+mn] // [16][O][n], position stride mk
	for r0 := 0; r0 < g.B*th; r0 += rows {
		r1 := min(r0+rows, g.B*th)
		n := (r1 - r0) * tw
		vk, mk := g.C*n+winoSkew, g.O*n+winoSkew
		f.winoInput(v, vk, n, r0, r1)
		for k := range wino.Taps {
			gemm(k, n, v[k*vk:], m[k*mk:])
		}
		f.winoOutput(y, beta, m, mk, n, r0, r1)
	}
}

// winoArena is the Winograd path's working memory (filter, transformed
// inputs and GEMM outputs in one buffer), grown to the largest call's need
// and reused by every call: from the pool, each size of convolution would
// keep a buffer of its own (the UNet's dozen sizes held 350 MB at 512x512
// images). One call at a time uses it; a concurrent one takes scratch.
type winoArena struct {
	mu  sync.Mutex
	buf []float32
}

// winoBuffer returns n floats of working memory and their release: the
// engine's arena when it is free, else scratch.
func (e *Engine) winoBuffer(n int) (buf []float32, release func()) {
	a := e.wino
	if a == nil || !a.mu.TryLock() {
		buf = e.scratch(n)
		return buf, func() { e.release(buf) }
	}
	if cap(a.buf) < n {
		a.buf = nil // let the old one go before the new one is made
		a.buf = make([]float32, n)
	}
	return a.buf[:n], a.mu.Unlock
}

// winoGEMMs transforms the filter into buf and returns the function that
// runs position k's GEMM m_k [O, n] = u_k [O, C] v_k (v_k [C, n], both
// with row stride n). With ap, each u_k is packed once here rather than by
// every GEMM of every block, a chunk of output channels at a time (only
// the chunk is held unpacked); without, buf holds the transformed filter
// for Gemm. A turned convolution (backwardWinograd) transforms the weight
// as stored, [C, O] per position, and reads position Turned(k) transposed
// as its u_k: nothing is reordered.
func (f *conv2d) winoGEMMs(ap backend.APacker, buf []float32) func(k, n int, v, m []float32) {
	g := f.g
	w, done := f.w.Borrow()
	defer done()
	rows, cols := f.winoStored()
	if ap == nil {
		uk := rows*cols + winoSkew
		u := buf // [16][rows][cols], positions uk apart
		f.e.par(rows, grain/(wino.Taps*cols)+1, func(lo, hi int) {
			f.winoFilter(u[lo*cols:], uk, cols, w, lo, hi, 0, cols)
		})
		if f.turned {
			return func(k, n int, v, m []float32) {
				f.e.B.Gemm(true, false, g.O, n, g.C, 1, u[wino.Turned(k)*uk:], g.O, v, n, 0, m, n)
			}
		}
		return func(k, n int, v, m []float32) {
			f.e.B.Gemm(false, false, g.O, n, g.C, 1, u[k*uk:], g.C, v, n, 0, m, n)
		}
	}
	size := len(buf) / wino.Taps
	pa := buf // 16 packed [O, C]
	budget := winoFilterChunk
	if f.budget != 0 {
		budget = f.budget
	}
	align := ap.PackedARows()
	chunk := align * max(1, budget/(wino.Taps*g.C*align)) // output channels
	uk := chunk*g.C + winoSkew
	f.e.par((g.O+chunk-1)/chunk, 1, func(lo, hi int) {
		u := f.e.scratch(wino.Taps * uk) // [16][chunk][C] or, turned, [16][C][chunk]; positions uk apart
		for o0 := lo * chunk; o0 < min(hi*chunk, g.O); o0 += chunk {
			o1 := min(o0+chunk, g.O)
			if f.turned {
				f.winoFilter(u, uk, o1-o0, w, 0, g.C, o0, o1)
				for k := range wino.Taps {
					ap.PackA(pa[k*size:(k+1)*size], true, g.O, g.C, o0, o1, u[wino.Turned(k)*uk:], o1-o0)
				}
				continue
			}
			f.winoFilter(u, uk, g.C, w, o0, o1, 0, g.C)
			for k := range wino.Taps {
				ap.PackA(pa[k*size:(k+1)*size], false, g.O, g.C, o0, o1, u[k*uk:], g.C)
			}
		}
		f.e.release(u)
	})
	return func(k, n int, v, m []float32) {
		ap.GemmPackedA(pa[k*size:(k+1)*size], false, g.O, n, g.C, 1, v, n, 0, m, n)
	}
}

// winoStored returns the weight's output and input channels as stored:
// O and C, or C and O for a turned convolution.
func (f *conv2d) winoStored() (rows, cols int) {
	if f.turned {
		return f.g.C, f.g.O
	}
	return f.g.O, f.g.C
}

// winoFilter sets u [16][r1-r0][c1-c0] (row stride ldu, positions uk
// apart) to G w Gᵀ for the filters of the stored weight w's output
// channels [r0, r1) and input channels [c0, c1), reading and writing
// along the input channels.
func (f *conv2d) winoFilter(u []float32, uk, ldu int, w []float32, r0, r1, c0, c1 int) {
	_, cols := f.winoStored()
	for r := r0; r < r1; r++ {
		wr, ur := w[r*9*cols:(r+1)*9*cols], u[(r-r0)*ldu:]
		if f.layout == OHIW { // [rows, KH, cols, KW]
			wino.Filters(ur, uk, wr[c0*3:], 3, 3*cols, c1-c0)
		} else { // [rows, cols, KH, KW]
			wino.Filters(ur, uk, wr[c0*9:], 9, 3, c1-c0)
		}
	}
}

// winoInput transforms the tiles of tile rows [r0, r1) (over the batch)
// into v [16][C][n], positions vk apart.
func (f *conv2d) winoInput(v []float32, vk, n, r0, r1 int) {
	g, x := f.g, f.x.Data()
	th, tw := (g.Ho+1)/2, (g.Wo+1)/2
	pw := 2*tw + 2 // a padded input row as the tiles read it
	f.e.par(g.C, grain/(wino.Taps*n)+1, func(lo, hi int) {
		buf := f.e.scratch(4 * pw)
		defer f.e.release(buf)
		var rows [4][]float32
		for c := lo; c < hi; c++ {
			for r := r0; r < r1; r++ {
				b, ty := r/th, r%th
				plane := x[(b*g.C+c)*g.H*g.W : (b*g.C+c+1)*g.H*g.W]
				for i := range rows {
					row := buf[i*pw : (i+1)*pw]
					rows[i] = row
					iy := 2*ty - g.PT + i
					if iy < 0 || iy >= g.H {
						clear(row)
						continue
					}
					clear(row[:g.PL])
					k := copy(row[g.PL:], plane[iy*g.W:(iy+1)*g.W])
					clear(row[g.PL+k:])
				}
				wino.InputRow(v[c*n+(r-r0)*tw:], vk, rows[0], rows[1], rows[2], rows[3], tw)
			}
		}
	})
}

// winoOutput takes m [16][O][n] (positions mk apart) of tile rows [r0, r1)
// out of the transformed domain into y, adding to it when beta is 1.
func (f *conv2d) winoOutput(y []float32, beta float32, m []float32, mk, n, r0, r1 int) {
	g := f.g
	th, tw := (g.Ho+1)/2, (g.Wo+1)/2
	ohw := g.Ho * g.Wo
	f.e.par(g.O, grain/(wino.Taps*n)+1, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			for r := r0; r < r1; r++ {
				b, ty := r/th, r%th
				plane := y[(b*g.O+o)*ohw : (b*g.O+o+1)*ohw]
				y0 := plane[2*ty*g.Wo : (2*ty+1)*g.Wo]
				var y1 []float32
				if 2*ty+1 < g.Ho {
					y1 = plane[(2*ty+1)*g.Wo : (2*ty+2)*g.Wo]
				}
				wino.OutputRow(y0, y1, g.Wo, m[o*n+(r-r0)*tw:], mk, tw, beta != 0)
			}
		}
	})
}

// winoBackFits reports whether the input gradient of a Winograd-path
// convolution g can take the Winograd path too: its padding, 2 minus g's
// on each side, must not be negative.
func winoBackFits(g convkern.Geom) bool {
	return winogradFits(g) && max(g.PT, g.PB, g.PL, g.PR) <= 2
}

// backwardWinograd delivers x's gradient for a frozen weight: the input
// gradient of a stride-1 3x3 convolution is the 3x3 convolution of dy
// [B, O, Ho, Wo], padded by 2 minus each side's padding, with the weight
// turned half a turn and its channels swapped, which runs on the Winograd
// path like the forward, reading the weight as stored (see winoGEMMs).
func (f *conv2d) backwardWinograd(dy []float32) {
	g := f.g
	gt := convkern.Geom{B: g.B, C: g.O, H: g.Ho, W: g.Wo, O: g.C, KH: 3, KW: 3, S: 1,
		PT: 2 - g.PT, PB: 2 - g.PB, PL: 2 - g.PL, PR: 2 - g.PR, Ho: g.H, Wo: g.W}
	x, _ := tensor.New(dy, g.B, g.O, g.Ho, g.Wo) // same numel by construction
	back := &conv2d{e: f.e, x: x, w: f.w, g: gt, layout: f.layout, path: pathWinograd, budget: f.budget, turned: true}
	dx := f.e.scratch(g.B * g.C * g.H * g.W) // [B, C, H, W]
	back.forwardWinograd(dx, 0)
	f.e.accGrad(f.x, dx)
}
