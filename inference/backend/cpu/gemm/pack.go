package gemm

// operand is a read-only view of a row-major float32 matrix as the GEMM
// sees it: element (i, j) of op(X) is data[i*ld+j], or data[j*ld+i] when
// trans.
type operand struct {
	data  []float32
	ld    int
	trans bool
}

// bSource is all the driver needs of op(B): packing a block of it into
// float32 panels. Packing is the only place that reads B, so this is the
// seam for other weight storage: a float16 view (issue 4) holding []uint16
// would implement packB by converting each element while it copies, like
// operand.packB below, and an Sgemm variant would pass it to block. Panels,
// kernels and the driver stay as they are.
type bSource interface {
	// packB copies op(B)[p0:p0+kc, j0:j0+nc] into dst as ceil(nc/nr)
	// panels of [kc, nr] (element (p, c) of a panel at p*nr+c), with
	// columns past nc set to zero.
	packB(dst []float32, p0, kc, j0, nc, nr int)
}

// aSource is all the driver needs of op(A): its packed blocks (float32
// or float16 storage, or packed once beforehand).
type aSource interface {
	// blockA returns op(A)[i0:i0+mc, p0:p0+kc] as ceil(mc/mr) panels of
	// [kc, mr] (element (r, p) of a panel at p*mr+r, rows past mc zero),
	// packing into buf if it must (buf holds at least roundUp(mc, mr)*kc
	// floats). i0 is a multiple of mr.
	blockA(buf []float32, i0, mc, p0, kc, mr int) []float32
}

// blockA implements aSource for float32 matrices: it packs the block.
func (a operand) blockA(buf []float32, i0, mc, p0, kc, mr int) []float32 {
	a.packA(buf, i0, mc, p0, kc, mr)
	return buf[:roundUp(mc, mr)*kc]
}

// pStep is how many k rows a transposed-order pack walks at once.
const pStep = 8

// packA implements aSource for float32 matrices.
func (a operand) packA(dst []float32, i0, mc, p0, kc, mr int) {
	if a.trans {
		// op(A)[i][p] = data[p*ld+i]: each p is a contiguous run of i, cut
		// into panels of mr. A few p at a time keep those rows in L1.
		for pb := 0; pb < kc; pb += pStep {
			pk := min(pStep, kc-pb)
			for ir := 0; ir < mc; ir += mr {
				runs(dst[ir*kc+pb*mr:], mr, a.data[(p0+pb)*a.ld+i0+ir:], a.ld, pk, min(mr, mc-ir))
			}
		}
		return
	}
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kc : (ir+mr)*kc]
		rows := min(mr, mc-ir)
		// op(A)[i][p] = data[i*ld+p]: each row is contiguous in p.
		interleave(panel, mr, rows, a.data, (i0+ir)*a.ld+p0, a.ld, kc)
	}
}

// packB implements bSource for float32 matrices.
func (b operand) packB(dst []float32, p0, kc, j0, nc, nr int) {
	if !b.trans {
		// op(B)[p][j] = data[p*ld+j]: each p is a contiguous run of j, cut
		// into panels of nr. A few p at a time keep those rows in L1.
		for pb := 0; pb < kc; pb += pStep {
			pk := min(pStep, kc-pb)
			for jr := 0; jr < nc; jr += nr {
				runs(dst[jr*kc+pb*nr:], nr, b.data[(p0+pb)*b.ld+j0+jr:], b.ld, pk, min(nr, nc-jr))
			}
		}
		return
	}
	for jr := 0; jr < nc; jr += nr {
		panel := dst[jr*kc : (jr+nr)*kc]
		cols := min(nr, nc-jr)
		// op(B)[p][j] = data[j*ld+p]: each column j is contiguous in p.
		interleave(panel, nr, cols, b.data, (j0+jr)*b.ld+p0, b.ld, kc)
	}
}

// runs writes dst[p*stride+c] = src[p*ld+c] for c < w and zeros for
// w <= c < stride, for every p < kc: kc short runs of a strided matrix
// become a [kc, stride] panel. Full runs of the kernels' widths move as
// fixed-size arrays, which compile to a few vector moves.
func runs(dst []float32, stride int, src []float32, ld, kc, w int) {
	if runsFast(dst, stride, src, ld, kc, w) {
		return
	}
	runsGo(dst, stride, src, ld, kc, w)
}

// runsGo is runs in portable Go.
func runsGo(dst []float32, stride int, src []float32, ld, kc, w int) {
	switch {
	case w == 32 && stride == 32:
		for p := range kc {
			v := [32]float32(src[p*ld:]) // a local copy lets the compiler use plain moves
			*(*[32]float32)(dst[p*32:]) = v
		}
	case w == 16 && stride == 16:
		for p := range kc {
			v := [16]float32(src[p*ld:]) // a local copy lets the compiler use plain moves
			*(*[16]float32)(dst[p*16:]) = v
		}
	case w == 14 && stride == 14:
		for p := range kc {
			// Copies that do not overlap: one of 14 values compiles to
			// overlapping 16-byte moves through a stack copy, whose
			// reloads cannot be forwarded from the stores (2–3× slower).
			s := src[p*ld : p*ld+14 : p*ld+14]
			d := dst[p*14 : p*14+14 : p*14+14]
			v, u, z := [8]float32(s), [4]float32(s[8:]), [2]float32(s[12:])
			*(*[8]float32)(d) = v
			*(*[4]float32)(d[8:]) = u
			*(*[2]float32)(d[12:]) = z
		}
	case w == 6 && stride == 6:
		for p := range kc { // as for 14: copies that do not overlap
			s, d := src[p*ld:p*ld+6:p*ld+6], dst[p*6:p*6+6:p*6+6]
			v, u := [4]float32(s), [2]float32(s[4:])
			*(*[4]float32)(d) = v
			*(*[2]float32)(d[4:]) = u
		}
	case w == 4 && stride == 4:
		for p := range kc {
			v := [4]float32(src[p*ld:]) // a local copy lets the compiler use plain moves
			*(*[4]float32)(dst[p*4:]) = v
		}
	default:
		for p := range kc {
			d := dst[p*stride : (p+1)*stride]
			copy(d, src[p*ld:p*ld+w])
			clear(d[w:])
		}
	}
}

// interleave writes dst[p*stride+r] = data[off+r*ld+p] for r < n and
// p < kc, and zeros for n <= r < stride: it turns n equally spaced rows
// of kc values into a [kc, stride] panel. Full panels of the AVX-512 and
// AVX2 shapes go through register transposes (interleaveFast); the rest go
// four, two or one rows at a time so each step does several loads and
// stores per bounds check.
func interleave(dst []float32, stride, n int, data []float32, off, ld, kc int) {
	dst = dst[:kc*stride]
	interleaveFrom(dst, stride, n, data, off, ld, kc, interleaveFast(dst, stride, n, data, off, ld, kc))
}

// interleaveFrom is interleave's portable part: it packs columns [p0, kc).
func interleaveFrom(dst []float32, stride, n int, data []float32, off, ld, kc, p0 int) {
	if p0 == kc {
		return
	}
	src := func(r int) []float32 { return data[off+r*ld+p0 : off+r*ld+kc] }
	d := dst[p0*stride:]
	r := 0
	for ; r+4 <= n; r += 4 {
		inter4(d[r:], stride, src(r), src(r+1), src(r+2), src(r+3))
	}
	for ; r+2 <= n; r += 2 {
		inter2(d[r:], stride, src(r), src(r+1))
	}
	for ; r < n; r++ {
		for p, v := range src(r) {
			d[p*stride+r] = v
		}
	}
	if n < stride {
		for p := range kc - p0 {
			clear(d[p*stride+n : (p+1)*stride])
		}
	}
}

func inter4(dst []float32, stride int, r0, r1, r2, r3 []float32) {
	r1, r2, r3 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)]
	for p := range r0 {
		d := dst[p*stride : p*stride+4 : p*stride+4]
		d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
	}
}

func inter2(dst []float32, stride int, r0, r1 []float32) {
	r1 = r1[:len(r0)]
	for p := range r0 {
		d := dst[p*stride : p*stride+2 : p*stride+2]
		d[0], d[1] = r0[p], r1[p]
	}
}
