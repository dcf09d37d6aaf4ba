#include "textflag.h"

// RUNSARGS loads the arguments of the masked runs: DI dst, R9 its row
// stride in bytes, SI src, R8 its row stride in bytes (an element of
// 1<<SHIFT bytes), CX rows, K1-K4 the masks.
#define RUNSARGS(SHIFT) \
	MOVQ dst+0(FP), DI;     \
	MOVQ stride+8(FP), R9;  \
	SHLQ $2, R9;            \
	MOVQ src+16(FP), SI;    \
	MOVQ ld+24(FP), R8;     \
	SHLQ $SHIFT, R8;        \
	MOVQ kc+32(FP), CX;     \
	MOVQ masks+40(FP), AX;  \
	KMOVW AX, K1;           \
	SHRQ $16, AX;           \
	KMOVW AX, K2;           \
	SHRQ $16, AX;           \
	KMOVW AX, K3;           \
	SHRQ $16, AX;           \
	KMOVW AX, K4

// Transposing pack of 16 source rows (see interleave16 in pack_amd64.go).
//
// Registers: SI rows 0-7, R10 rows 8-15 (row r at base + (r%8)*ld), R8 ld,
// R11 3*ld, R12 5*ld, R13 7*ld (bytes: 4 an element, 2 for float16); DI the panel, R9 its row stride in
// bytes; CX 16-column chunks left; BX rows loaded (14 or 16); K1 the store
// mask (one bit per loaded row).

// LOADROWS loads column chunk [p, p+16) of rows 0-13 into Z0..Z13 with
// LD: VMOVUPS for float32 rows, VCVTPH2PS (16 binary16 values widened)
// for float16 rows.
#define LOADROWS(LD) \
	LD (SI), Z0;        \
	LD (SI)(R8*1), Z1;  \
	LD (SI)(R8*2), Z2;  \
	LD (SI)(R11*1), Z3; \
	LD (SI)(R8*4), Z4;  \
	LD (SI)(R12*1), Z5; \
	LD (SI)(R11*2), Z6; \
	LD (SI)(R13*1), Z7; \
	LD (R10), Z8;        \
	LD (R10)(R8*1), Z9;  \
	LD (R10)(R8*2), Z10; \
	LD (R10)(R11*1), Z11; \
	LD (R10)(R8*4), Z12; \
	LD (R10)(R12*1), Z13

// TRANSPOSE turns Z0..Z15 (row r, lanes p) into Z0..Z15 (column p, lanes
// r): interleave 32-bit then 64-bit pairs within 128-bit lanes, then move
// 128-bit lanes across registers in two rounds.
#define TRANSPOSE \
	VUNPCKLPS Z1, Z0, Z16;   \
	VUNPCKHPS Z1, Z0, Z17;   \
	VUNPCKLPS Z3, Z2, Z18;   \
	VUNPCKHPS Z3, Z2, Z19;   \
	VUNPCKLPS Z5, Z4, Z20;   \
	VUNPCKHPS Z5, Z4, Z21;   \
	VUNPCKLPS Z7, Z6, Z22;   \
	VUNPCKHPS Z7, Z6, Z23;   \
	VUNPCKLPS Z9, Z8, Z24;   \
	VUNPCKHPS Z9, Z8, Z25;   \
	VUNPCKLPS Z11, Z10, Z26; \
	VUNPCKHPS Z11, Z10, Z27; \
	VUNPCKLPS Z13, Z12, Z28; \
	VUNPCKHPS Z13, Z12, Z29; \
	VUNPCKLPS Z15, Z14, Z30; \
	VUNPCKHPS Z15, Z14, Z31; \
	                          \
	VUNPCKLPD Z18, Z16, Z0;  \
	VUNPCKHPD Z18, Z16, Z1;  \
	VUNPCKLPD Z19, Z17, Z2;  \
	VUNPCKHPD Z19, Z17, Z3;  \
	VUNPCKLPD Z22, Z20, Z4;  \
	VUNPCKHPD Z22, Z20, Z5;  \
	VUNPCKLPD Z23, Z21, Z6;  \
	VUNPCKHPD Z23, Z21, Z7;  \
	VUNPCKLPD Z26, Z24, Z8;  \
	VUNPCKHPD Z26, Z24, Z9;  \
	VUNPCKLPD Z27, Z25, Z10; \
	VUNPCKHPD Z27, Z25, Z11; \
	VUNPCKLPD Z30, Z28, Z12; \
	VUNPCKHPD Z30, Z28, Z13; \
	VUNPCKLPD Z31, Z29, Z14; \
	VUNPCKHPD Z31, Z29, Z15; \
	                          \
	VSHUFF32X4 $0x44, Z4, Z0, Z16;  \
	VSHUFF32X4 $0xEE, Z4, Z0, Z17;  \
	VSHUFF32X4 $0x44, Z12, Z8, Z18; \
	VSHUFF32X4 $0xEE, Z12, Z8, Z19; \
	VSHUFF32X4 $0x44, Z5, Z1, Z20;  \
	VSHUFF32X4 $0xEE, Z5, Z1, Z21;  \
	VSHUFF32X4 $0x44, Z13, Z9, Z22; \
	VSHUFF32X4 $0xEE, Z13, Z9, Z23; \
	VSHUFF32X4 $0x44, Z6, Z2, Z24;  \
	VSHUFF32X4 $0xEE, Z6, Z2, Z25;  \
	VSHUFF32X4 $0x44, Z14, Z10, Z26; \
	VSHUFF32X4 $0xEE, Z14, Z10, Z27; \
	VSHUFF32X4 $0x44, Z7, Z3, Z28;  \
	VSHUFF32X4 $0xEE, Z7, Z3, Z29;  \
	VSHUFF32X4 $0x44, Z15, Z11, Z30; \
	VSHUFF32X4 $0xEE, Z15, Z11, Z31; \
	                                 \
	VSHUFF32X4 $0x88, Z18, Z16, Z0;  \
	VSHUFF32X4 $0xDD, Z18, Z16, Z4;  \
	VSHUFF32X4 $0x88, Z19, Z17, Z8;  \
	VSHUFF32X4 $0xDD, Z19, Z17, Z12; \
	VSHUFF32X4 $0x88, Z22, Z20, Z1;  \
	VSHUFF32X4 $0xDD, Z22, Z20, Z5;  \
	VSHUFF32X4 $0x88, Z23, Z21, Z9;  \
	VSHUFF32X4 $0xDD, Z23, Z21, Z13; \
	VSHUFF32X4 $0x88, Z26, Z24, Z2;  \
	VSHUFF32X4 $0xDD, Z26, Z24, Z6;  \
	VSHUFF32X4 $0x88, Z27, Z25, Z10; \
	VSHUFF32X4 $0xDD, Z27, Z25, Z14; \
	VSHUFF32X4 $0x88, Z30, Z28, Z3;  \
	VSHUFF32X4 $0xDD, Z30, Z28, Z7;  \
	VSHUFF32X4 $0x88, Z31, Z29, Z11; \
	VSHUFF32X4 $0xDD, Z31, Z29, Z15

// STORE writes column p's register to the panel row and moves on.
#define STORE(z) \
	VMOVUPS z, K1, (DI); \
	ADDQ    R9, DI

// func interleave16AVX512(dst *float32, dstride int, src *float32, ld int, chunks int, rows int)
TEXT ·interleave16AVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ dstride+8(FP), R9
	SHLQ $2, R9
	MOVQ src+16(FP), SI
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ chunks+32(FP), CX
	MOVQ rows+40(FP), BX

	LEAQ (R8)(R8*2), R11  // 3*ld
	LEAQ (R8)(R8*4), R12  // 5*ld
	LEAQ (R11)(R8*4), R13 // 7*ld
	LEAQ (SI)(R8*8), R10  // row 8

	MOVL $0xFFFF, AX
	CMPQ BX, $16
	JEQ  f32mask
	MOVL $0x3FFF, AX
f32mask:
	KMOVW AX, K1
	TESTQ CX, CX
	JEQ   f32done

f32loop:
	LOADROWS(VMOVUPS)
	CMPQ BX, $16
	JNE  f32zero
	VMOVUPS (R10)(R11*2), Z14
	VMOVUPS (R10)(R13*1), Z15
	JMP  f32transpose
f32zero:
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
f32transpose:
	TRANSPOSE
	STORE(Z0)
	STORE(Z1)
	STORE(Z2)
	STORE(Z3)
	STORE(Z4)
	STORE(Z5)
	STORE(Z6)
	STORE(Z7)
	STORE(Z8)
	STORE(Z9)
	STORE(Z10)
	STORE(Z11)
	STORE(Z12)
	STORE(Z13)
	STORE(Z14)
	STORE(Z15)
	ADDQ $64, SI
	ADDQ $64, R10
	DECQ CX
	JNE  f32loop

f32done:
	VZEROUPPER
	RET

// func interleave16HalfAVX512(dst *float32, dstride int, src *uint16, ld int, chunks int, rows int)
TEXT ·interleave16HalfAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ dstride+8(FP), R9
	SHLQ $2, R9
	MOVQ src+16(FP), SI
	MOVQ ld+24(FP), R8
	SHLQ $1, R8
	MOVQ chunks+32(FP), CX
	MOVQ rows+40(FP), BX

	LEAQ (R8)(R8*2), R11  // 3*ld
	LEAQ (R8)(R8*4), R12  // 5*ld
	LEAQ (R11)(R8*4), R13 // 7*ld
	LEAQ (SI)(R8*8), R10  // row 8

	MOVL $0xFFFF, AX
	CMPQ BX, $16
	JEQ  f16mask
	MOVL $0x3FFF, AX
f16mask:
	KMOVW AX, K1
	TESTQ CX, CX
	JEQ   f16done

	// AX walks the rows that follow these (the next panel's, as the
	// packers call this in order), one row a chunk, prefetching its
	// first 512 bytes (a 256-column block) into L1.
	MOVQ  BX, AX
	IMULQ R8, AX
	ADDQ  SI, AX

f16loop:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 128(AX)
	PREFETCHT0 192(AX)
	PREFETCHT0 256(AX)
	PREFETCHT0 320(AX)
	PREFETCHT0 384(AX)
	PREFETCHT0 448(AX)
	ADDQ R8, AX
	LOADROWS(VCVTPH2PS)
	CMPQ BX, $16
	JNE  f16zero
	VCVTPH2PS (R10)(R11*2), Z14
	VCVTPH2PS (R10)(R13*1), Z15
	JMP  f16transpose
f16zero:
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
f16transpose:
	TRANSPOSE
	STORE(Z0)
	STORE(Z1)
	STORE(Z2)
	STORE(Z3)
	STORE(Z4)
	STORE(Z5)
	STORE(Z6)
	STORE(Z7)
	STORE(Z8)
	STORE(Z9)
	STORE(Z10)
	STORE(Z11)
	STORE(Z12)
	STORE(Z13)
	STORE(Z14)
	STORE(Z15)
	ADDQ $32, SI
	ADDQ $32, R10
	DECQ CX
	JNE  f16loop

f16done:
	VZEROUPPER
	RET

// func runs32AVX512(dst *float32, src *float32, ld int, kc int)
//
// dst[p*32+c] = src[p*ld+c] for c < 32 and p < kc: two ZMM moves a row
// (the AVX-512 kernel's B panel from row-major B), prefetching the row
// eight ahead.
TEXT ·runs32AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	MOVQ kc+24(FP), CX
	TESTQ CX, CX
	JEQ  done32
	LEAQ (SI)(R8*8), AX // the row eight ahead
row32:
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ R8, SI
	ADDQ R8, AX
	ADDQ $128, DI
	DECQ CX
	JNE  row32
done32:
	VZEROUPPER
	RET

// func runsMaskedAVX512(dst *float32, stride int, src *float32, ld int, kc int, masks uint64)
//
// dst[p*stride+c] = src[p*ld+c] for c < w and 0 for w <= c < stride, p <
// kc, for stride <= 32: a row is two masked ZMM loads (zeroing the lanes
// past w) and two masked stores (the lanes below stride). masks holds the
// four 16-bit masks: loads of columns 0-15 and 16-31, then stores of the
// same (see runsMasks).
TEXT ·runsMaskedAVX512(SB), NOSPLIT, $0-48
	RUNSARGS(2)
	TESTQ CX, CX
	JEQ  doneMasked
rowMasked:
	PREFETCHT0 (SI)(R8*8)
	PREFETCHT0 64(SI)(R8*8)
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS Z0, K3, (DI)
	VMOVUPS Z1, K4, 64(DI)
	ADDQ R8, SI
	ADDQ R9, DI
	DECQ CX
	JNE  rowMasked
doneMasked:
	VZEROUPPER
	RET

// func runsHalfMaskedAVX512(dst *float32, stride int, src *uint16, ld int, kc int, masks uint64)
//
// runsMaskedAVX512 for binary16 rows, widened: dst[p*stride+c] =
// float32(src[p*ld+c]).
TEXT ·runsHalfMaskedAVX512(SB), NOSPLIT, $0-48
	RUNSARGS(1)
	TESTQ CX, CX
	JEQ  doneHalfMasked
rowHalfMasked:
	PREFETCHT0 (SI)(R8*8)
	VCVTPH2PS.Z (SI), K1, Z0
	VCVTPH2PS.Z 32(SI), K2, Z1
	VMOVUPS Z0, K3, (DI)
	VMOVUPS Z1, K4, 64(DI)
	ADDQ R8, SI
	ADDQ R9, DI
	DECQ CX
	JNE  rowHalfMasked
doneHalfMasked:
	VZEROUPPER
	RET
