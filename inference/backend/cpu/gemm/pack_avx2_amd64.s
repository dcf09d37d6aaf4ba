#include "textflag.h"

// AVX2 panel packing (see pack_amd64.go): transposes of 8 or 6 source
// rows, 8 columns a loop, and copies of fixed-width row runs. Pure data
// movement: the panels are exactly the Go loops'.

// TRANSPOSE4 finishes a transpose of four column chunks of 8 rows: each
// of A0..A3 holds rows i (low 128-bit lane) and i+4 (high lane) for
// i = 0..3, four columns each; it leaves column j of the 8 rows in
// OUT(j) for j = 0..3 (interleave 32-bit then 64-bit pairs within lanes).
// It uses Y8..Y11.
#define TRANSPOSE4(A0, A1, A2, A3, O0, O1, O2, O3) \
	VUNPCKLPS A1, A0, Y8;  \
	VUNPCKHPS A1, A0, Y9;  \
	VUNPCKLPS A3, A2, Y10; \
	VUNPCKHPS A3, A2, Y11; \
	VSHUFPS $0x44, Y10, Y8, O0; \
	VSHUFPS $0xEE, Y10, Y8, O1; \
	VSHUFPS $0x44, Y11, Y9, O2; \
	VSHUFPS $0xEE, Y11, Y9, O3

// Registers of both transposes: SI row 0, R10 row 4 (row r at its base +
// (r%4)*ld), R8 ld, R11 3*ld (bytes); DI the panel; CX chunks of 8
// columns left.

// func interleave8AVX2(dst *float32, dstride int, src *float32, ld int, chunks int)
TEXT ·interleave8AVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ dstride+8(FP), R9
	SHLQ $2, R9
	MOVQ src+16(FP), SI
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R11
	LEAQ (SI)(R8*4), R10
	LEAQ (R9)(R9*2), R12 // 3 panel rows
	MOVQ chunks+32(FP), CX
loop8:
	// Rows i and i+4, columns 0-3 then 4-7, in Y0..Y3 and Y4..Y7.
	VMOVUPS (SI), X0
	VINSERTF128 $1, (R10), Y0, Y0
	VMOVUPS (SI)(R8*1), X1
	VINSERTF128 $1, (R10)(R8*1), Y1, Y1
	VMOVUPS (SI)(R8*2), X2
	VINSERTF128 $1, (R10)(R8*2), Y2, Y2
	VMOVUPS (SI)(R11*1), X3
	VINSERTF128 $1, (R10)(R11*1), Y3, Y3
	VMOVUPS 16(SI), X4
	VINSERTF128 $1, 16(R10), Y4, Y4
	VMOVUPS 16(SI)(R8*1), X5
	VINSERTF128 $1, 16(R10)(R8*1), Y5, Y5
	VMOVUPS 16(SI)(R8*2), X6
	VINSERTF128 $1, 16(R10)(R8*2), Y6, Y6
	VMOVUPS 16(SI)(R11*1), X7
	VINSERTF128 $1, 16(R10)(R11*1), Y7, Y7
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y12, Y13, Y14, Y15)
	VMOVUPS Y12, (DI)
	VMOVUPS Y13, (DI)(R9*1)
	VMOVUPS Y14, (DI)(R9*2)
	VMOVUPS Y15, (DI)(R12*1)
	LEAQ (DI)(R9*4), DI
	TRANSPOSE4(Y4, Y5, Y6, Y7, Y12, Y13, Y14, Y15)
	VMOVUPS Y12, (DI)
	VMOVUPS Y13, (DI)(R9*1)
	VMOVUPS Y14, (DI)(R9*2)
	VMOVUPS Y15, (DI)(R12*1)
	LEAQ (DI)(R9*4), DI
	ADDQ $32, SI
	ADDQ $32, R10
	DECQ CX
	JNZ loop8
	VZEROUPPER
	RET

// func interleave6AVX2(dst *float32, src *float32, ld int, chunks int)
//
// Six rows into a panel of width 6: the transpose of rows 0-5 and two zero
// rows gives each column's six values and two spare slots, stored 8 wide
// 24 bytes apart so that the next column overwrites the spares; a chunk's
// last column is stored 6 wide.
TEXT ·interleave6AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R11
	LEAQ (SI)(R8*4), R10
	MOVQ chunks+24(FP), CX
loop6:
	VMOVUPS (SI), X0
	VINSERTF128 $1, (R10), Y0, Y0
	VMOVUPS (SI)(R8*1), X1
	VINSERTF128 $1, (R10)(R8*1), Y1, Y1
	VMOVUPS (SI)(R8*2), X2 // VEX loads of X registers zero the high lane
	VMOVUPS (SI)(R11*1), X3
	VMOVUPS 16(SI), X4
	VINSERTF128 $1, 16(R10), Y4, Y4
	VMOVUPS 16(SI)(R8*1), X5
	VINSERTF128 $1, 16(R10)(R8*1), Y5, Y5
	VMOVUPS 16(SI)(R8*2), X6
	VMOVUPS 16(SI)(R11*1), X7
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y12, Y13, Y14, Y15)
	VMOVUPS Y12, (DI)
	VMOVUPS Y13, 24(DI)
	VMOVUPS Y14, 48(DI)
	VMOVUPS Y15, 72(DI)
	TRANSPOSE4(Y4, Y5, Y6, Y7, Y12, Y13, Y14, Y15)
	VMOVUPS Y12, 96(DI)
	VMOVUPS Y13, 120(DI)
	VMOVUPS Y14, 144(DI)
	VMOVUPS X15, 168(DI)
	VEXTRACTF128 $1, Y15, X15
	VMOVSD X15, 184(DI)
	ADDQ $192, DI
	ADDQ $32, SI
	ADDQ $32, R10
	DECQ CX
	JNZ loop6
	VZEROUPPER
	RET

// func runs16AVX2(dst *float32, src *float32, ld int, kc int)
//
// dst[p*16+c] = src[p*ld+c] for c < 16 and p < kc: two YMM moves a row.
TEXT ·runs16AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	MOVQ kc+24(FP), CX
	SHRQ $1, CX
	JZ last16
pair16:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS (SI)(R8*1), Y2
	VMOVUPS 32(SI)(R8*1), Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	LEAQ (SI)(R8*2), SI
	ADDQ $128, DI
	DECQ CX
	JNZ pair16
last16:
	TESTQ $1, kc+24(FP)
	JZ done16
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
done16:
	VZEROUPPER
	RET

// func runs6AVX2(dst *float32, src *float32, ld int, kc int)
//
// dst[p*6+c] = src[p*ld+c] for c < 6 and p < kc: 16 and 8 bytes a row.
TEXT ·runs6AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	MOVQ kc+24(FP), CX
	SHRQ $1, CX
	JZ last6
pair6:
	VMOVUPS (SI), X0
	VMOVSD 16(SI), X1
	VMOVUPS (SI)(R8*1), X2
	VMOVSD 16(SI)(R8*1), X3
	VMOVUPS X0, (DI)
	VMOVSD X1, 16(DI)
	VMOVUPS X2, 24(DI)
	VMOVSD X3, 40(DI)
	LEAQ (SI)(R8*2), SI
	ADDQ $48, DI
	DECQ CX
	JNZ pair6
last6:
	TESTQ $1, kc+24(FP)
	JZ done6
	VMOVUPS (SI), X0
	VMOVSD 16(SI), X1
	VMOVUPS X0, (DI)
	VMOVSD X1, 16(DI)
done6:
	RET
