package ops

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"

	"github.com/perfusion-studio/perfusion/inference/ops/internal/vmath"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// GroupNorm normalises x [B, C, ...spatial] over each of `groups`
// contiguous channel groups (statistics over the group's channels and all
// spatial positions), then applies the per-channel affine gamma, beta [C]:
// y = (x - mean) / sqrt(var + eps) * gamma + beta, var biased (Wu & He,
// "Group Normalization", 2018). gamma and beta may be zero Tensors (no
// affine).
func (e *Engine) GroupNorm(x tensor.Tensor, groups int, gamma, beta tensor.Tensor, eps float32) (tensor.Tensor, error) {
	return e.groupNorm(x, groups, gamma, beta, eps, false)
}

// GroupNormSiLU is SiLU(GroupNorm(x, groups, gamma, beta, eps)) as one
// operator (the GroupNorm-swish pair that opens every SD ResBlock): the
// activation is applied while the normalised values are in cache, saving
// a pass over memory and an intermediate tensor.
func (e *Engine) GroupNormSiLU(x tensor.Tensor, groups int, gamma, beta tensor.Tensor, eps float32) (tensor.Tensor, error) {
	return e.groupNorm(x, groups, gamma, beta, eps, true)
}

func (e *Engine) groupNorm(x tensor.Tensor, groups int, gamma, beta tensor.Tensor, eps float32, silu bool) (tensor.Tensor, error) {
	switch {
	case x.Rank() < 2 || x.Size() == 0:
		return tensor.Tensor{}, dimsErr("group_norm", x, "[B, C, ...]", "want a non-empty tensor of rank >= 2")
	case groups < 1 || x.Dim(1)%groups != 0:
		return tensor.Tensor{}, dimsErr("group_norm", x, fmt.Sprintf("groups=%d", groups), "channels must divide into groups")
	}
	if err := checkAffine("group_norm", x, x.Dim(1), gamma, beta); err != nil {
		return tensor.Tensor{}, err
	}
	f := &groupNorm{e: e, x: x, gamma: gamma, beta: beta, eps: eps, silu: silu,
		b: x.Dim(0), c: x.Dim(1), s: x.Size() / (x.Dim(0) * x.Dim(1)), groups: groups}
	return e.run(f, x.Shape(), AnyGrad(x, gamma, beta))
}

// checkAffine checks that present gamma and beta are [c].
func checkAffine(op string, x tensor.Tensor, c int, gamma, beta tensor.Tensor) error {
	for _, p := range []tensor.Tensor{gamma, beta} {
		if p.Valid() && (p.Rank() != 1 || p.Dim(0) != c) {
			return shapeErr(op, x, p, fmt.Sprintf("gamma and beta must be [%d]", c))
		}
	}
	return nil
}

type groupNorm struct {
	e               *Engine
	x, gamma, beta  tensor.Tensor // [B, C, S], [C], [C]
	eps             float32
	silu            bool // SiLU applied to the output
	b, c, s, groups int
	mean, rstd      []float64 // [B, groups], saved by Forward for Backward (only then)
}

func (f *groupNorm) Operands() []mat.Tensor { return Operands(f.x, f.gamma, f.beta) }

// groupLen is the number of elements of one (batch, group) slice.
func (f *groupNorm) groupLen() int { return f.c / f.groups * f.s }

func (f *groupNorm) Forward() (mat.Tensor, error) {
	x, n, cg := f.x.Data(), f.groupLen(), f.c/f.groups
	y := f.e.output(len(x)) // [B, C, S]
	// The moments are saved only for a graph's Backward.
	keep := AnyGrad(f.x, f.gamma, f.beta)
	if keep {
		f.mean, f.rstd = make([]float64, f.b*f.groups), make([]float64, f.b*f.groups)
	}
	gamma, beta := affine(f.gamma, f.beta)
	f.e.par(f.b*f.groups, grain/n+1, func(lo, hi int) {
		for bg := lo; bg < hi; bg++ {
			xs, ys := x[bg*n:(bg+1)*n], y[bg*n:(bg+1)*n]
			mean, rstd := moments(xs, float64(f.eps))
			if keep {
				f.mean[bg], f.rstd[bg] = mean, rstd
			}
			c0 := bg % f.groups * cg
			for k := 0; k < cg; k++ {
				yk := ys[k*f.s : (k+1)*f.s]
				normalize(yk, xs[k*f.s:(k+1)*f.s], mean, rstd, gamma, beta, c0+k)
				if f.silu {
					siluInPlace(yk)
				}
			}
		}
	})
	return tensor.Leaf(y), nil
}

// siluInPlace sets v[i] = v[i]*sigmoid(v[i]).
func siluInPlace(v []float32) {
	var s [block]float32
	for lo := 0; lo < len(v); lo += block {
		vs := v[lo:min(lo+block, len(v))]
		vmath.Sigmoids(s[:len(vs)], vs, 1)
		for i, u := range vs {
			vs[i] = u * s[i]
		}
	}
}

// siluGrad replaces the activation inputs u by the gradient at them,
// g*SiLU'(u) elementwise: SiLU'(u) = s*(1 + u*(1-s)), s = sigmoid(u).
func siluGrad(u, g []float32) {
	var s [block]float32
	for lo := 0; lo < len(u); lo += block {
		us, gs := u[lo:min(lo+block, len(u))], g[lo:min(lo+block, len(u))]
		vmath.Sigmoids(s[:len(us)], us, 1)
		for i, v := range us {
			us[i] = gs[i] * s[i] * (1 + v*(1-s[i]))
		}
	}
}

// siluDelta returns dy*SiLU'(GroupNorm(x)) in a scratch buffer, the
// gradient at the normalisation's output, recomputing that output from
// the saved statistics.
func (f *groupNorm) siluDelta(dy []float32) []float32 {
	x, n, cg := f.x.Data(), f.groupLen(), f.c/f.groups
	gamma, beta := affine(f.gamma, f.beta)
	d := f.e.scratch(len(x)) // [B, C, S]
	f.e.par(f.b*f.groups, grain/n+1, func(lo, hi int) {
		for bg := lo; bg < hi; bg++ {
			c0 := bg % f.groups * cg
			for k := 0; k < cg; k++ {
				at := bg*n + k*f.s
				u := d[at : at+f.s]
				normalize(u, x[at:at+f.s], f.mean[bg], f.rstd[bg], gamma, beta, c0+k)
				siluGrad(u, dy[at:at+f.s])
			}
		}
	})
	return d
}

func (f *groupNorm) Backward(gy mat.Tensor) error {
	x, dy, n, cg := f.x.Data(), tensor.Float32s(gy), f.groupLen(), f.c/f.groups
	if f.silu {
		dy = f.siluDelta(dy)
		defer f.e.release(dy)
	}
	needX := f.x.RequiresGrad()
	needGamma := f.gamma.Valid() && f.gamma.RequiresGrad()
	needBeta := f.beta.Valid() && f.beta.RequiresGrad()
	gamma, _ := affine(f.gamma, f.beta)
	var dx []float32
	if needX {
		dx = f.e.scratch(len(x)) // [B, C, S]
	}
	// per (batch, channel) sums of dy*xhat and dy, reduced over the batch below
	var pg, pb []float64
	if needGamma || needBeta {
		pg, pb = make([]float64, f.b*f.c), make([]float64, f.b*f.c)
	}
	f.e.par(f.b*f.groups, grain/n+1, func(lo, hi int) {
		for bg := lo; bg < hi; bg++ {
			xs, dys := x[bg*n:(bg+1)*n], dy[bg*n:(bg+1)*n]
			mean, rstd := f.mean[bg], f.rstd[bg]
			c0 := bg % f.groups * cg
			var s1, s2 float64 // sum dxhat, sum dxhat*xhat
			for k := 0; k < cg; k++ {
				xc, dyc := xs[k*f.s:(k+1)*f.s], dys[k*f.s:(k+1)*f.s]
				dyx, sdy := dotCentered(dyc, xc, mean)
				dyx *= rstd // sum dy*xhat over this channel
				if pg != nil {
					pg[bg/f.groups*f.c+c0+k], pb[bg/f.groups*f.c+c0+k] = dyx, sdy
				}
				gk := 1.0
				if gamma != nil {
					gk = float64(gamma[c0+k])
				}
				s1 += gk * sdy
				s2 += gk * dyx
			}
			if dx == nil {
				continue
			}
			m1, m2 := s1/float64(n), s2/float64(n)
			for k := 0; k < cg; k++ {
				gk := 1.0
				if gamma != nil {
					gk = float64(gamma[c0+k])
				}
				normBackward(dx[bg*n+k*f.s:bg*n+(k+1)*f.s], xs[k*f.s:(k+1)*f.s], dys[k*f.s:(k+1)*f.s],
					mean, rstd, gk, m1, m2)
			}
		}
	})
	if dx != nil {
		f.e.accGrad(f.x, dx)
	}
	if needGamma {
		f.e.accGrad(f.gamma, reduceBatch(f.e, pg, f.b, f.c))
	}
	if needBeta {
		f.e.accGrad(f.beta, reduceBatch(f.e, pb, f.b, f.c))
	}
	return nil
}

// reduceBatch sums p [B, C] over B into a scratch [C] buffer.
func reduceBatch(e *Engine, p []float64, b, c int) []float32 {
	out := e.scratch(c)
	for j := range out {
		var s float64
		for i := 0; i < b; i++ {
			s += p[i*c+j]
		}
		out[j] = float32(s)
	}
	return out
}

// affine returns the data of gamma and beta, nil where absent.
func affine(gamma, beta tensor.Tensor) (g, b []float32) {
	if gamma.Valid() {
		g = gamma.Data()
	}
	if beta.Valid() {
		b = beta.Data()
	}
	return g, b
}

// meanRatioMax is the |mean|/std above which the normalisation subtracts
// the mean in float64 instead of folding it into a float32 shift.
const meanRatioMax = 4

// moments returns the mean and 1/sqrt(var+eps) of v, two-pass in float64.
func moments(v []float32, eps float64) (mean, rstd float64) {
	mean = sum64(v) / float64(len(v))
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		d0, d1 := float64(v[i])-mean, float64(v[i+1])-mean
		d2, d3 := float64(v[i+2])-mean, float64(v[i+3])-mean
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(v); i++ {
		d := float64(v[i]) - mean
		s0 += d * d
	}
	return mean, 1 / math.Sqrt(((s0+s1)+(s2+s3))/float64(len(v))+eps)
}

// normalize writes y = (x-mean)*rstd*gamma[c] + beta[c] (gamma, beta
// optional) for one channel's values.
func normalize(y, x []float32, mean, rstd float64, gamma, beta []float32, c int) {
	a, sh := rstd, -mean*rstd
	if gamma != nil {
		a *= float64(gamma[c])
		sh *= float64(gamma[c])
	}
	if beta != nil {
		sh += float64(beta[c])
	}
	a32, sh32 := float32(a), float32(sh)
	if math.Abs(mean*rstd) > meanRatioMax {
		// x*a+sh would cancel to a float32 error of |mean*rstd| ulps
		for i, v := range x {
			y[i] = float32((float64(v) - mean) * a)
		}
		if beta != nil {
			for i := range y {
				y[i] += beta[c]
			}
		}
		return
	}
	for i, v := range x {
		y[i] = v*a32 + sh32
	}
}

// dotCentered returns sum dy*(x-mean) and sum dy in float64.
func dotCentered(dy, x []float32, mean float64) (dyx, sdy float64) {
	var a0, a1, b0, b1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		d0, d1 := float64(dy[i]), float64(dy[i+1])
		a0 += d0 * (float64(x[i]) - mean)
		a1 += d1 * (float64(x[i+1]) - mean)
		b0 += d0
		b1 += d1
	}
	for ; i < len(x); i++ {
		d := float64(dy[i])
		a0 += d * (float64(x[i]) - mean)
		b0 += d
	}
	return a0 + a1, b0 + b1
}

// normBackward writes dx = rstd*(g*dy - m1 - xhat*m2) for one channel,
// where xhat = (x-mean)*rstd, m1 = mean(g*dy), m2 = mean(g*dy*xhat) over
// the normalised slice.
func normBackward(dx, x, dy []float32, mean, rstd, g, m1, m2 float64) {
	if math.Abs(mean*rstd) > meanRatioMax {
		for i := range dx {
			dx[i] = float32(rstd * (g*float64(dy[i]) - m1 - (float64(x[i])-mean)*rstd*m2))
		}
		return
	}
	// dx = a*dy + b*x + c with a = rstd*g, b = -rstd^2*m2, c = rstd*(mean*rstd*m2 - m1)
	a, b, c := float32(rstd*g), float32(-rstd*rstd*m2), float32(rstd*(mean*rstd*m2-m1))
	for i := range dx {
		dx[i] = a*dy[i] + b*x[i] + c
	}
}
