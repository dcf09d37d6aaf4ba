package attention

import (
	"math"
	"sync"
)

// bwdWave holds the packed operands of the heads of one wave, each head's
// block at offset gi times its size.
type bwdWave struct {
	kt, vt  []float32    // [g, tkp/bwdK, Dh|Dv, bwdK] keys, values transposed per key block
	kp      []float32    // [g, tkp, Dhp] keys
	qp, dop []float32    // [g, tqp, Dhp] queries times scale·log2(e); [g, tqp, Dvp] output gradients
	dqp     []float32    // [g, tqp, Dhp] query gradients, accumulated under locks
	lse, d  []float32    // [g, tqp] log-sum-exp in base 2; rowsum(dO ∘ O)
	locks   []sync.Mutex // [g, tqp/bwdQ] one per query block of dqp

	tqp, tkp, dhp, dvp int // padded token counts and widths
}

// bwdScratch is one worker's tiles.
type bwdScratch struct {
	s, dp  []float32 // [bwdQ, bwdK] probabilities; their gradient
	dk, dv []float32 // [bwdK, Dhp], [bwdK, Dvp] the task's key and value gradients
}

func backward(kn kernels, r Runner, p Problem, q, k, v, out, lse, dout, dq, dk, dv []float32) error {
	if err := p.checkSlices(q, k, v, out); err != nil {
		return err
	}
	nq, nk, nv, no := p.lens()
	if err := checkLen("lse", lse, p.LSELen()); err != nil {
		return err
	}
	if err := checkLen("dout", dout, no); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		s    []float32
		n    int
	}{{"dq", dq, nq}, {"dk", dk, nk}, {"dv", dv, nv}} {
		if c.s != nil {
			if err := checkLen(c.name, c.s, c.n); err != nil {
				return err
			}
		}
	}
	if dq == nil && dk == nil && dv == nil {
		return nil
	}
	H, Dh, Dv := p.Heads, p.Dh, p.Dv
	tqp, tkp := roundUp(p.Tq, bwdQ), roundUp(p.Tk, bwdK)
	dhp, dvp := roundUp(Dh, 8), roundUp(Dv, 8)
	nqb, nkb := tqp/bwdQ, tkp/bwdK
	bh := p.B * H
	threads := max(1, r.Threads())
	perHead := Dh*tkp + tkp*dhp + Dv*tkp + 2*tqp*dhp + tqp*dvp + 2*tqp
	g := waveHeads(bh, nkb, threads, perHead)

	wv := bwdWave{
		kt: make([]float32, g*Dh*tkp), kp: make([]float32, g*tkp*dhp),
		vt: make([]float32, g*Dv*tkp), qp: make([]float32, g*tqp*dhp),
		dop: make([]float32, g*tqp*dvp), dqp: make([]float32, g*tqp*dhp),
		lse: make([]float32, g*tqp), d: make([]float32, g*tqp),
		locks: make([]sync.Mutex, g*nqb),
		tqp:   tqp, tkp: tkp, dhp: dhp, dvp: dvp,
	}
	scratch := make([]bwdScratch, min(threads, g*nkb))
	for i := range scratch {
		scratch[i] = bwdScratch{
			s: make([]float32, bwdQ*bwdK), dp: make([]float32, bwdQ*bwdK),
			dk: make([]float32, bwdK*dhp), dv: make([]float32, bwdK*dvp),
		}
	}

	for h0 := 0; h0 < bh; h0 += g {
		n := min(g, bh-h0)
		// Pack keys and values; pad rows and columns stay zero.
		r.Parallel(n*p.Tk, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				gi, t := i/p.Tk, i%p.Tk
				b, h := (h0+gi)/H, (h0+gi)%H
				kr := k[headRow(b, t, h, p.Tk, H, Dh):][:Dh]
				copy(wv.kp[(gi*tkp+t)*dhp:], kr)
				kb, j := t/bwdK, t%bwdK
				for c, x := range kr {
					wv.kt[gi*Dh*tkp+(kb*Dh+c)*bwdK+j] = x
				}
				for c, x := range v[headRow(b, t, h, p.Tk, H, Dv):][:Dv] {
					wv.vt[gi*Dv*tkp+(kb*Dv+c)*bwdK+j] = x
				}
			}
		})
		// Pack queries (scaled so that scores are base-2 logits), output
		// gradients, lse and D; clear dQ.
		c := p.Scale * log2e
		r.Parallel(n*p.Tq, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				gi, t := i/p.Tq, i%p.Tq
				b, h := (h0+gi)/H, (h0+gi)%H
				for j, x := range q[headRow(b, t, h, p.Tq, H, Dh):][:Dh] {
					wv.qp[(gi*tqp+t)*dhp+j] = c * x
				}
				do := dout[headRow(b, t, h, p.Tq, H, Dv):][:Dv]
				copy(wv.dop[(gi*tqp+t)*dvp:], do)
				var dsum float64
				for j, o := range out[headRow(b, t, h, p.Tq, H, Dv):][:Dv] {
					dsum += float64(o) * float64(do[j])
				}
				wv.d[gi*tqp+t] = float32(dsum)
				wv.lse[gi*tqp+t] = lse[(h0+gi)*p.Tq+t] * log2e
				clear(wv.dqp[(gi*tqp+t)*dhp:][:dhp])
			}
		})
		runTasks(r, len(scratch), n*nkb, func(w, t int) {
			bwdTask(kn, p, &scratch[w], &wv, h0, t/nkb, t%nkb, dk, dv, dq != nil)
		})
		if dq != nil {
			r.Parallel(n*p.Tq, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					gi, t := i/p.Tq, i%p.Tq
					b, h := (h0+gi)/H, (h0+gi)%H
					for j, x := range wv.dqp[(gi*tqp+t)*dhp:][:Dh] {
						dq[headRow(b, t, h, p.Tq, H, Dh)+j] = p.Scale * x
					}
				}
			})
		}
	}
	return nil
}

// bwdTask sweeps the query blocks for key block kb of wave head gi: it
// owns that block's dK and dV rows, and adds into the shared dQ under the
// query block's lock.
func bwdTask(kn kernels, p Problem, sc *bwdScratch, wv *bwdWave, h0, gi, kb int, dk, dv []float32, wantDQ bool) {
	H, Dh, Dv := p.Heads, p.Dh, p.Dv
	tqp, tkp, dhp, dvp := wv.tqp, wv.tkp, wv.dhp, wv.dvp
	b, h := (h0+gi)/H, (h0+gi)%H
	kt := wv.kt[gi*Dh*tkp:][:Dh*tkp]
	kp := wv.kp[gi*tkp*dhp:][:tkp*dhp]
	vt := wv.vt[gi*Dv*tkp:][:Dv*tkp]
	qp := wv.qp[gi*tqp*dhp:][:tqp*dhp]
	dop := wv.dop[gi*tqp*dvp:][:tqp*dvp]
	dqp := wv.dqp[gi*tqp*dhp:][:tqp*dhp]
	lse := wv.lse[gi*tqp:][:tqp]
	dsum := wv.d[gi*tqp:][:tqp]
	nqb := tqp / bwdQ

	k0 := kb * bwdK
	keys := min(bwdK, p.Tk-k0)
	kprows := roundUp(keys, mr) // rows of the dK, dV products; those past keys are dropped
	width := roundUp(keys, 8)   // columns of the score tiles
	clear(sc.dk)
	clear(sc.dv)

	first := 0
	if p.Causal {
		first = k0 / bwdQ // earlier query blocks see none of these keys
	}
	for i := range nqb - first {
		qb := first + (i+kb)%(nqb-first) // rotated so tasks rarely share a dQ lock
		q0 := qb * bwdQ
		rows := min(bwdQ, p.Tq-q0)
		prows := roundUp(rows, mr)

		// P = 2^(S - L) with S = (scale·log2 e) Q Kᵀ and L in base 2, masked.
		for r0 := 0; r0 < prows; r0 += mr {
			kn.panel(Dh, qp[(q0+r0)*dhp:], dhp, 1, kt[k0*Dh:], bwdK, sc.s[r0*bwdK:], bwdK, width, false)
		}
		for r := range prows {
			nv := 0
			if r < rows {
				nv = keys
				if p.Causal {
					nv = max(0, min(nv, q0+r-k0+1))
				}
			}
			kn.expRow(sc.s[r*bwdK:][:width], nv, lse[q0+r])
		}
		// dP = dO Vᵀ
		for r0 := 0; r0 < prows; r0 += mr {
			kn.panel(Dv, dop[(q0+r0)*dvp:], dvp, 1, vt[k0*Dv:], bwdK, sc.dp[r0*bwdK:], bwdK, width, false)
		}
		// dV += Pᵀ dO
		if dv != nil {
			for c0 := 0; c0 < kprows; c0 += mr {
				kn.panel(prows, sc.s[c0:], 1, bwdK, dop[q0*dvp:], dvp, sc.dv[c0*dvp:], dvp, dvp, true)
			}
		}
		// dS = P ∘ (dP - D); the gradients of the logits are scale·dS.
		for r := range prows {
			kn.dsRow(sc.s[r*bwdK:][:width], sc.dp[r*bwdK:][:width], dsum[q0+r])
		}
		// dK += dSᵀ Q
		if dk != nil {
			for c0 := 0; c0 < kprows; c0 += mr {
				kn.panel(prows, sc.dp[c0:], 1, bwdK, qp[q0*dhp:], dhp, sc.dk[c0*dhp:], dhp, dhp, true)
			}
		}
		// dQ += dS K
		if wantDQ {
			mu := &wv.locks[gi*nqb+qb]
			mu.Lock()
			for r0 := 0; r0 < prows; r0 += mr {
				kn.panel(width, sc.dp[r0*bwdK:], bwdK, 1, kp[k0*dhp:], dhp, dqp[(q0+r0)*dhp:], dhp, dhp, true)
			}
			mu.Unlock()
		}
	}

	// dK = scale·dSᵀQ = ln2 · dSᵀ(scale·log2(e)·Q); dQ gets its scale when
	// written out.
	for r := range keys {
		if dk != nil {
			for j, x := range sc.dk[r*dhp:][:Dh] {
				dk[headRow(b, k0+r, h, p.Tk, H, Dh)+j] = math.Ln2 * x
			}
		}
		if dv != nil {
			copy(dv[headRow(b, k0+r, h, p.Tk, H, Dv):][:Dv], sc.dv[r*dvp:][:Dv])
		}
	}
}
