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

// bwdTileFloats is the size of one worker's bwdScratch.
func bwdTileFloats(dhp, dvp int) int { return 2*bwdQ*bwdK + bwdK*dhp + bwdK*dvp }

// bwdTiles cuts worker w's tiles out of tiles.
func bwdTiles(tiles []float32, w, dhp, dvp int) bwdScratch {
	t := tiles[w*bwdTileFloats(dhp, dvp):]
	var sc bwdScratch
	sc.s, t = t[:bwdQ*bwdK], t[bwdQ*bwdK:]
	sc.dp, t = t[:bwdQ*bwdK], t[bwdQ*bwdK:]
	sc.dk, t = t[:bwdK*dhp], t[bwdK*dhp:]
	sc.dv = t[:bwdK*dvp]
	return sc
}

// newBwdWave cuts the packed operands of g heads out of work, which must
// hold g*perHead floats (see backward).
func newBwdWave(work []float32, g, dh, dv, tqp, tkp, dhp, dvp int) bwdWave {
	wv := bwdWave{tqp: tqp, tkp: tkp, dhp: dhp, dvp: dvp, locks: make([]sync.Mutex, g*tqp/bwdQ)}
	cut := func(n int) []float32 {
		s := work[:n:n]
		work = work[n:]
		return s
	}
	wv.kt, wv.kp, wv.vt = cut(g*dh*tkp), cut(g*tkp*dhp), cut(g*dv*tkp)
	wv.qp, wv.dop, wv.dqp = cut(g*tqp*dhp), cut(g*tqp*dvp), cut(g*tqp*dhp)
	wv.lse, wv.d = cut(g*tqp), cut(g*tqp)
	return wv
}

func backward(kn kernels, r Runner, buf Buffers, p Problem, q, k, v, out, lse, dout, dq, dk, dv []float32) error {
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
	nkb := tkp / bwdK
	bh := p.B * H
	threads := max(1, r.Threads())
	perHead := Dh*tkp + tkp*dhp + Dv*tkp + 2*tqp*dhp + tqp*dvp + 2*tqp
	g := waveHeads(bh, nkb, threads, perHead)
	workers := min(threads, g*nkb)

	// The buffer comes with any contents: the packing below writes every
	// value the tasks read, zeros in the padding. Tiles are multiples of
	// mr rows (and 8 columns) of both, so the tasks read keys up to the
	// last block's width and queries up to its rows, rounded so; the pad
	// past those is left unwritten (for the few tokens of a small model's
	// inner levels it would be most of the packing).
	keysPacked := min(tkp, roundUp(roundUp(p.Tk, kn.mr), 8))
	queriesPacked := min(tqp, roundUp(p.Tq, kn.mr))
	work := get(buf, g*perHead+workers*bwdTileFloats(dhp, dvp))
	defer put(buf, work)
	wv := newBwdWave(work, g, Dh, Dv, tqp, tkp, dhp, dvp)
	tiles := work[g*perHead:]

	// The loop bodies are made once, for all waves: closures made inside
	// the wave loop would be allocated again for every wave.
	var h0 int // first head of the wave
	// Pack keys and values.
	packKV := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi, t := i/keysPacked, i%keysPacked
			kb, j := t/bwdK, t%bwdK
			kpr := wv.kp[(gi*tkp+t)*dhp:][:dhp]
			// Key t's column of its block: kt[c*bwdK] and vt[c*bwdK].
			kt := wv.kt[gi*Dh*tkp+kb*Dh*bwdK+j:][:(Dh-1)*bwdK+1]
			vt := wv.vt[gi*Dv*tkp+kb*Dv*bwdK+j:][:(Dv-1)*bwdK+1]
			if t >= p.Tk { // a pad key
				clear(kpr)
				for c := range Dh {
					kt[c*bwdK] = 0
				}
				for c := range Dv {
					vt[c*bwdK] = 0
				}
				continue
			}
			b, h := (h0+gi)/H, (h0+gi)%H
			kr := k[headRow(b, t, h, p.Tk, H, Dh):][:Dh]
			copy(kpr, kr)
			clear(kpr[Dh:])
			for c, x := range kr {
				kt[c*bwdK] = x
			}
			for c, x := range v[headRow(b, t, h, p.Tk, H, Dv):][:Dv] {
				vt[c*bwdK] = x
			}
		}
	}
	// Pack queries (scaled so that scores are base-2 logits), output
	// gradients, lse and D; clear dQ.
	c := p.Scale * log2e
	packQ := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi, t := i/queriesPacked, i%queriesPacked
			qpr := wv.qp[(gi*tqp+t)*dhp:][:dhp]
			dor := wv.dop[(gi*tqp+t)*dvp:][:dvp]
			clear(wv.dqp[(gi*tqp+t)*dhp:][:dhp])
			if t >= p.Tq { // a pad query
				clear(qpr)
				clear(dor)
				wv.d[gi*tqp+t], wv.lse[gi*tqp+t] = 0, 0
				continue
			}
			b, h := (h0+gi)/H, (h0+gi)%H
			for j, x := range q[headRow(b, t, h, p.Tq, H, Dh):][:Dh] {
				qpr[j] = c * x
			}
			clear(qpr[Dh:])
			do := dout[headRow(b, t, h, p.Tq, H, Dv):][:Dv]
			copy(dor, do)
			clear(dor[Dv:])
			var dsum float64
			for j, o := range out[headRow(b, t, h, p.Tq, H, Dv):][:Dv] {
				dsum += float64(o) * float64(do[j])
			}
			wv.d[gi*tqp+t] = float32(dsum)
			wv.lse[gi*tqp+t] = lse[(h0+gi)*p.Tq+t] * log2e
		}
	}
	task := func(w, t int) {
		sc := bwdTiles(tiles, w, dhp, dvp)
		bwdTask(kn, p, &sc, &wv, h0, t/nkb, t%nkb, dk, dv, dq != nil)
	}
	unpackDQ := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi, t := i/p.Tq, i%p.Tq
			b, h := (h0+gi)/H, (h0+gi)%H
			for j, x := range wv.dqp[(gi*tqp+t)*dhp:][:Dh] {
				dq[headRow(b, t, h, p.Tq, H, Dh)+j] = p.Scale * x
			}
		}
	}
	for h0 = 0; h0 < bh; h0 += g {
		n := min(g, bh-h0)
		r.Parallel(n*keysPacked, packKV)
		r.Parallel(n*queriesPacked, packQ)
		runTasks(r, workers, n*nkb, task)
		if dq != nil {
			r.Parallel(n*p.Tq, unpackDQ)
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
	kprows := roundUp(keys, kn.mr) // rows of the dK, dV products; those past keys are dropped
	// Columns of the score tiles: every column those products read as a
	// row, so that each is written (masked to zero past keys) before it is
	// read.
	width := roundUp(kprows, 8)
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
		prows := roundUp(rows, kn.mr)

		// P = 2^(S - L) with S = (scale·log2 e) Q Kᵀ and L in base 2, masked.
		for r0 := 0; r0 < prows; r0 += kn.mr {
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
		for r0 := 0; r0 < prows; r0 += kn.mr {
			kn.panel(Dv, dop[(q0+r0)*dvp:], dvp, 1, vt[k0*Dv:], bwdK, sc.dp[r0*bwdK:], bwdK, width, false)
		}
		// dV += Pᵀ dO
		if dv != nil {
			for c0 := 0; c0 < kprows; c0 += kn.mr {
				kn.panel(prows, sc.s[c0:], 1, bwdK, dop[q0*dvp:], dvp, sc.dv[c0*dvp:], dvp, dvp, true)
			}
		}
		// dS = P ∘ (dP - D); the gradients of the logits are scale·dS.
		for r := range prows {
			kn.dsRow(sc.s[r*bwdK:][:width], sc.dp[r*bwdK:][:width], dsum[q0+r])
		}
		// dK += dSᵀ Q
		if dk != nil {
			for c0 := 0; c0 < kprows; c0 += kn.mr {
				kn.panel(prows, sc.dp[c0:], 1, bwdK, qp[q0*dhp:], dhp, sc.dk[c0*dhp:], dhp, dhp, true)
			}
		}
		// dQ += dS K
		if wantDQ {
			mu := &wv.locks[gi*nqb+qb]
			mu.Lock()
			for r0 := 0; r0 < prows; r0 += kn.mr {
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
