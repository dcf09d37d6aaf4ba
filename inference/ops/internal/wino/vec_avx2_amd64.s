#include "textflag.h"

// AVX2 kernels of F(2x2, 3x3), 8 tiles (one YMM of each position) per
// loop; see vec_amd64.go. They do the Go loops' additions in the same
// order (no FMA), so the results are bit-identical to inputRowGo and
// outputRowGo.

// COMBINE computes one combination (A op B) of two input rows on the
// columns 0-7, 8-15, 2-9 and 10-17 of the group into Y0..Y3.
#define COMBINE(A, B, OP) \
	VMOVUPS 0(A), Y0; \
	OP 0(B), Y0, Y0; \
	VMOVUPS 32(A), Y1; \
	OP 32(B), Y1, Y1; \
	VMOVUPS 8(A), Y2; \
	OP 8(B), Y2, Y2; \
	VMOVUPS 40(A), Y3; \
	OP 40(B), Y3, Y3

// COMBINE_REV is COMBINE with the operands swapped: B op A (Go assembly's
// OP mem, reg, dst computes reg op mem, so the register holds B).
#define COMBINE_REV(A, B, OP) \
	VMOVUPS 0(B), Y0; \
	OP 0(A), Y0, Y0; \
	VMOVUPS 32(B), Y1; \
	OP 32(A), Y1, Y1; \
	VMOVUPS 8(B), Y2; \
	OP 8(A), Y2, Y2; \
	VMOVUPS 40(B), Y3; \
	OP 40(A), Y3, Y3

// TAPS splits the combination in Y0..Y3 into even columns 2t (Y4) and odd
// 2t+1 (Y5) of columns 0-15, even 2t+2 (Y6) and odd 2t+3 (Y7) of columns
// 2-17, and stores its four positions d0-d2, d1+d2, d2-d1, d1-d3 at R12,
// R12+DX, R12+2DX and R12+BX. VSHUFPS leaves the 128-bit lanes' halves
// interleaved (0 2 8 10 | 4 6 12 14); VPERMPD $0xD8 puts them in order.
#define TAPS \
	VSHUFPS $0x88, Y1, Y0, Y4; \
	VSHUFPS $0xDD, Y1, Y0, Y5; \
	VSHUFPS $0x88, Y3, Y2, Y6; \
	VSHUFPS $0xDD, Y3, Y2, Y7; \
	VPERMPD $0xD8, Y4, Y4; \
	VPERMPD $0xD8, Y5, Y5; \
	VPERMPD $0xD8, Y6, Y6; \
	VPERMPD $0xD8, Y7, Y7; \
	VSUBPS Y6, Y4, Y8; \
	VADDPS Y6, Y5, Y9; \
	VSUBPS Y5, Y6, Y10; \
	VSUBPS Y7, Y5, Y11; \
	VMOVUPS Y8, (R12); \
	VMOVUPS Y9, (R12)(DX*1); \
	VMOVUPS Y10, (R12)(DX*2); \
	VMOVUPS Y11, (R12)(BX*1)

// func inputRowAVX2(v *float32, ldk int, r0, r1, r2, r3 *float32, groups int)
TEXT ·inputRowAVX2(SB), NOSPLIT, $0-56
	MOVQ v+0(FP), DI
	MOVQ ldk+8(FP), DX
	SHLQ $2, DX
	LEAQ (DX)(DX*2), BX
	MOVQ r0+16(FP), R8
	MOVQ r1+24(FP), R9
	MOVQ r2+32(FP), R10
	MOVQ r3+40(FP), R11
	MOVQ groups+48(FP), CX
inloop:
	// Bᵀ d row by row (r0-r2, r1+r2, r2-r1, r1-r3), then (Bᵀ d) B on
	// each: positions 4q..4q+3 for combination q.
	MOVQ DI, R12
	COMBINE(R8, R10, VSUBPS)
	TAPS
	LEAQ (R12)(DX*4), R12
	COMBINE(R9, R10, VADDPS)
	TAPS
	LEAQ (R12)(DX*4), R12
	COMBINE_REV(R9, R10, VSUBPS)
	TAPS
	LEAQ (R12)(DX*4), R12
	COMBINE(R9, R11, VSUBPS)
	TAPS
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
	ADDQ $64, R11
	ADDQ $32, DI
	DECQ CX
	JNZ inloop
	VZEROUPPER
	RET

// COLUMN computes column j of Aᵀ m for 8 tiles, m0+m1+m2 into S0 and
// m1-m2-m3 into S1, from positions j, 4+j, 8+j and 12+j of m at M0..M3.
#define COLUMN(M0, M1, M2, M3, S0, S1) \
	VMOVUPS M0, S0; \
	VMOVUPS M1, Y14; \
	VMOVUPS M2, Y15; \
	VADDPS Y14, S0, S0; \
	VADDPS Y15, S0, S0; \
	VSUBPS Y15, Y14, S1; \
	VSUBPS M3, S1, S1

// ROW computes one output row of (Aᵀ m) A from that row's columns A0..A3
// of Aᵀ m: columns 2t (a0+a1+a2) and 2t+1 (a1-a2-a3) of the 8 tiles,
// interleaved into Y12 (output columns 0-7) and Y13 (8-15). VUNPCK*PS
// interleave within 128-bit lanes; VPERM2F128 puts the lanes in order.
#define ROW(A0, A1, A2, A3) \
	VADDPS A1, A0, Y12; \
	VADDPS A2, Y12, Y12; \
	VSUBPS A2, A1, Y13; \
	VSUBPS A3, Y13, Y13; \
	VUNPCKLPS Y13, Y12, Y14; \
	VUNPCKHPS Y13, Y12, Y15; \
	VPERM2F128 $0x20, Y15, Y14, Y12; \
	VPERM2F128 $0x31, Y15, Y14, Y13

// func outputRowAVX2(y0, y1, m *float32, ldk int, groups int, add, two bool)
TEXT ·outputRowAVX2(SB), NOSPLIT, $0-42
	MOVQ y0+0(FP), R8
	MOVQ y1+8(FP), R9
	MOVQ m+16(FP), R12
	MOVQ ldk+24(FP), DX
	SHLQ $2, DX
	LEAQ (DX)(DX*2), BX
	LEAQ (R12)(DX*4), R13 // position 4
	LEAQ (R13)(DX*4), R14 // position 8
	LEAQ (R14)(DX*4), R15 // position 12
	MOVQ groups+32(FP), CX
	MOVBQZX add+40(FP), R10
	MOVBQZX two+41(FP), R11
outloop:
	// Aᵀ m: row 0 in Y0..Y3, row 1 in Y4..Y7, one register per column j.
	COLUMN((R12), (R13), (R14), (R15), Y0, Y4)
	COLUMN((R12)(DX*1), (R13)(DX*1), (R14)(DX*1), (R15)(DX*1), Y1, Y5)
	COLUMN((R12)(DX*2), (R13)(DX*2), (R14)(DX*2), (R15)(DX*2), Y2, Y6)
	COLUMN((R12)(BX*1), (R13)(BX*1), (R14)(BX*1), (R15)(BX*1), Y3, Y7)
	ROW(Y0, Y1, Y2, Y3)
	TESTQ R10, R10
	JZ store0
	VADDPS (R8), Y12, Y12
	VADDPS 32(R8), Y13, Y13
store0:
	VMOVUPS Y12, (R8)
	VMOVUPS Y13, 32(R8)
	TESTQ R11, R11
	JZ next
	ROW(Y4, Y5, Y6, Y7)
	TESTQ R10, R10
	JZ store1
	VADDPS (R9), Y12, Y12
	VADDPS 32(R9), Y13, Y13
store1:
	VMOVUPS Y12, (R9)
	VMOVUPS Y13, 32(R9)
next:
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $32, R12
	ADDQ $32, R13
	ADDQ $32, R14
	ADDQ $32, R15
	DECQ CX
	JNZ outloop
	VZEROUPPER
	RET
