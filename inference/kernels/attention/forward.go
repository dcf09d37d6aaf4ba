package attention

import "math"

// fwdScratch is one worker's tiles.
type fwdScratch struct {
	q  []float32 // [fwdQ, Dh] the task's queries
	s  []float32 // [fwdQ, fwdK] scores, then probabilities
	o  []float32 // [fwdQ, Dvp] unnormalised output
	ml []float32 // [fwdQ, 2] running max and sum per row
}

// fwdTileFloats is the size of one worker's fwdScratch.
func fwdTileFloats(dh, dvp int) int { return fwdQ*dh + fwdQ*fwdK + fwdQ*dvp + 2*fwdQ }

// fwdTiles cuts worker w's tiles out of tiles.
func fwdTiles(tiles []float32, w, dh, dvp int) fwdScratch {
	t := tiles[w*fwdTileFloats(dh, dvp):]
	sc := fwdScratch{q: t[:fwdQ*dh]}
	t = t[fwdQ*dh:]
	sc.s, t = t[:fwdQ*fwdK], t[fwdQ*fwdK:]
	sc.o, t = t[:fwdQ*dvp], t[fwdQ*dvp:]
	sc.ml = t[:2*fwdQ]
	return sc
}

func forward(kn kernels, r Runner, buf Buffers, p Problem, q, k, v, out, lse []float32) error {
	if err := p.checkSlices(q, k, v, out); err != nil {
		return err
	}
	if lse != nil {
		if err := checkLen("lse", lse, p.LSELen()); err != nil {
			return err
		}
	}
	H, Dh, Dv := p.Heads, p.Dh, p.Dv
	tkp := roundUp(p.Tk, fwdK)
	dvp := roundUp(Dv, 8)
	nqb := ceilDiv(p.Tq, fwdQ)
	bh := p.B * H
	threads := max(1, r.Threads())
	g := waveHeads(bh, nqb, threads, Dh*tkp+tkp*dvp)
	workers := min(threads, g*nqb)

	// Packed per head of the wave, with zeros in the padding (the buffer
	// comes with any contents). Blocking the keys keeps a tile's rows close
	// together in the cache. The tasks read the keys up to the last tile's
	// width, a multiple of 8, so the pad keys past it are left unwritten:
	// for the few tokens of a small model's inner levels they would be most
	// of the packing.
	packed := min(tkp, roundUp(p.Tk, 8))
	nkt, nvp := g*Dh*tkp, g*tkp*dvp
	work := get(buf, nkt+nvp+workers*fwdTileFloats(Dh, dvp))
	defer put(buf, work)
	kt := work[:nkt]        // [g, tkp/fwdK, Dh, fwdK] keys transposed per key block
	vp := work[nkt:][:nvp]  // [g, tkp, Dvp] values
	tiles := work[nkt+nvp:] // [workers] fwdScratch

	// The loop bodies are made once, for all waves: closures made inside
	// the wave loop would be allocated again for every wave.
	var h0 int // first head of the wave
	pack := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi, t := i/packed, i%packed
			ktg := kt[gi*Dh*tkp:]
			vr := vp[(gi*tkp+t)*dvp:][:dvp]
			if t >= p.Tk { // a pad key
				for d := range Dh {
					ktg[(t/fwdK*Dh+d)*fwdK+t%fwdK] = 0
				}
				clear(vr)
				continue
			}
			b, h := (h0+gi)/H, (h0+gi)%H
			for d, x := range k[headRow(b, t, h, p.Tk, H, Dh):][:Dh] {
				ktg[(t/fwdK*Dh+d)*fwdK+t%fwdK] = x
			}
			copy(vr, v[headRow(b, t, h, p.Tk, H, Dv):][:Dv])
			clear(vr[Dv:])
		}
	}
	task := func(w, t int) {
		gi, qb := t/nqb, t%nqb
		sc := fwdTiles(tiles, w, Dh, dvp)
		fwdTask(kn, p, &sc, h0+gi, qb*fwdQ, kt[gi*Dh*tkp:][:Dh*tkp], vp[gi*tkp*dvp:][:tkp*dvp], q, out, lse)
	}
	for h0 = 0; h0 < bh; h0 += g {
		n := min(g, bh-h0)
		r.Parallel(n*packed, pack)
		runTasks(r, workers, n*nqb, task)
	}
	return nil
}

// fwdTask computes the output rows [q0, q0+fwdQ) of one head.
func fwdTask(kn kernels, p Problem, sc *fwdScratch, head, q0 int, kt, vp, q, out, lse []float32) {
	H, Dh, Dv := p.Heads, p.Dh, p.Dv
	b, h := head/H, head%H
	dvp := len(sc.o) / fwdQ
	rows := min(fwdQ, p.Tq-q0)
	prows := roundUp(rows, kn.mr)

	// Queries scaled by scale·log2(e), so scores are base-2 logits.
	c := p.Scale * log2e
	for r := range prows {
		dst := sc.q[r*Dh : (r+1)*Dh]
		if r < rows {
			for i, x := range q[headRow(b, q0+r, h, p.Tq, H, Dh):][:Dh] {
				dst[i] = c * x
			}
		} else {
			clear(dst)
		}
	}
	clear(sc.o)
	for r := range fwdQ {
		sc.ml[2*r], sc.ml[2*r+1] = negInf, 0
	}

	kEnd := p.Tk
	if p.Causal {
		kEnd = min(kEnd, q0+rows)
	}
	for k0 := 0; k0 < kEnd; k0 += fwdK {
		width := roundUp(min(fwdK, kEnd-k0), 8) // columns computed; pad keys are masked
		for r0 := 0; r0 < prows; r0 += kn.mr {
			kn.panel(Dh, sc.q[r0*Dh:], Dh, 1, kt[k0*Dh:], fwdK, sc.s[r0*fwdK:], fwdK, width, false)
		}
		valid := min(fwdK, p.Tk-k0)
		for r := range prows {
			row := sc.s[r*fwdK:][:width]
			if r >= rows {
				clear(row)
				continue
			}
			nv := valid
			if p.Causal {
				nv = max(0, min(nv, q0+r-k0+1))
			}
			kn.softmaxRow(row, nv, (*[2]float32)(sc.ml[2*r:]), sc.o[r*dvp:][:dvp])
		}
		for r0 := 0; r0 < prows; r0 += kn.mr {
			kn.panel(width, sc.s[r0*fwdK:], fwdK, 1, vp[k0*dvp:], dvp, sc.o[r0*dvp:], dvp, dvp, true)
		}
	}

	for r := range rows {
		m, l := sc.ml[2*r], sc.ml[2*r+1]
		inv := 1 / l
		dst := out[headRow(b, q0+r, h, p.Tq, H, Dv):][:Dv]
		for c := range dst {
			dst[c] = sc.o[r*dvp+c] * inv
		}
		if lse != nil {
			lse[head*p.Tq+q0+r] = (m + float32(math.Log2(float64(l)))) * math.Ln2
		}
	}
}
