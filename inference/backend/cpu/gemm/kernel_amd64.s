#include "textflag.h"

// One k step of the 6×16 tile: B row in Y12:Y13, A values broadcast into
// Y14/Y15 alternately, accumulators Y0..Y11 (row r in Y(2r), Y(2r+1)).
#define STEP(ao, bo) \
	VMOVUPS      bo(DI), Y12;    \
	VMOVUPS      bo+32(DI), Y13; \
	VBROADCASTSS ao(SI), Y14;    \
	VFMADD231PS  Y12, Y14, Y0;   \
	VFMADD231PS  Y13, Y14, Y1;   \
	VBROADCASTSS ao+4(SI), Y15;  \
	VFMADD231PS  Y12, Y15, Y2;   \
	VFMADD231PS  Y13, Y15, Y3;   \
	VBROADCASTSS ao+8(SI), Y14;  \
	VFMADD231PS  Y12, Y14, Y4;   \
	VFMADD231PS  Y13, Y14, Y5;   \
	VBROADCASTSS ao+12(SI), Y15; \
	VFMADD231PS  Y12, Y15, Y6;   \
	VFMADD231PS  Y13, Y15, Y7;   \
	VBROADCASTSS ao+16(SI), Y14; \
	VFMADD231PS  Y12, Y14, Y8;   \
	VFMADD231PS  Y13, Y14, Y9;   \
	VBROADCASTSS ao+20(SI), Y15; \
	VFMADD231PS  Y12, Y15, Y10;  \
	VFMADD231PS  Y13, Y15, Y11

// Row r of C: scale by alpha (Y12), add beta (Y13) * C when loading, store.
#define ROWLOAD(lo, hi) \
	VMULPS      Y12, lo, lo;    \
	VMULPS      Y12, hi, hi;    \
	VFMADD231PS (DX), Y13, lo;  \
	VFMADD231PS 32(DX), Y13, hi; \
	VMOVUPS     lo, (DX);       \
	VMOVUPS     hi, 32(DX);     \
	ADDQ        R8, DX

#define ROWSTORE(lo, hi) \
	VMULPS  Y12, lo, lo; \
	VMULPS  Y12, hi, hi; \
	VMOVUPS lo, (DX);    \
	VMOVUPS hi, 32(DX);  \
	ADDQ    R8, DX

// func kern6x16AVX2(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC int)
TEXT ·kern6x16AVX2(SB), NOSPLIT, $0-56
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	// Warm the six C rows while the loop runs.
	MOVQ       DX, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)

	CMPQ CX, $4
	JL   tail

loop4:
	STEP(0, 0)
	STEP(24, 64)
	STEP(48, 128)
	STEP(72, 192)
	ADDQ $96, SI
	ADDQ $256, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JE    done

loop1:
	STEP(0, 0)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop1

done:
	VBROADCASTSS alpha+40(FP), Y12
	MOVQ         loadC+48(FP), AX
	TESTQ        AX, AX
	JE           store
	VBROADCASTSS beta+44(FP), Y13
	ROWLOAD(Y0, Y1)
	ROWLOAD(Y2, Y3)
	ROWLOAD(Y4, Y5)
	ROWLOAD(Y6, Y7)
	ROWLOAD(Y8, Y9)
	ROWLOAD(Y10, Y11)
	VZEROUPPER
	RET

store:
	ROWSTORE(Y0, Y1)
	ROWSTORE(Y2, Y3)
	ROWSTORE(Y4, Y5)
	ROWSTORE(Y6, Y7)
	ROWSTORE(Y8, Y9)
	ROWSTORE(Y10, Y11)
	VZEROUPPER
	RET

