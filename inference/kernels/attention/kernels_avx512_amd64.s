//go:build amd64 && !purego

#include "textflag.h"
#include "exp_amd64.h"

// AVX-512 inner loops of the attention kernel (AVX512F only, as
// x86.HasAVX512 reports; YMM code keeps to Y0-Y15, which need no AVX512VL);
// see kernels.go for what each computes. Vector constants are broadcast
// from the first lane of the ·vc* values of consts_amd64.s.

// ---- panel512: C[12, n] (+)= A[12, k] B[k, n] ----
//
// A(r, p) is at a[r*rs+p*ps]: rows 0-2 are read from SI, 3-5 from DI, 6-8
// from R12 and 9-11 from AX, each plus 0, rs (R8) or 2·rs; all four move
// by ps (R9) per k step. CX walks B by ldb (R10), R14 counts k.

// ABASES points SI, DI, R12, AX at rows 0, 3, 6, 9 of A.
#define ABASES \
	MOVQ a+8(FP), SI;     \
	LEAQ (SI)(R8*2), DI;  \
	ADDQ R8, DI;          \
	LEAQ (DI)(R8*2), R12; \
	ADDQ R8, R12;         \
	LEAQ (R12)(R8*2), AX; \
	ADDQ R8, AX

// ANEXT moves the A row pointers and B to the next k step, and counts it.
#define ANEXT \
	ADDQ R9, SI;  \
	ADDQ R9, DI;  \
	ADDQ R9, R12; \
	ADDQ R9, AX;  \
	ADDQ R10, CX; \
	DECQ R14

// R32 is one row of a 32-column step: B in Z24:Z25.
#define R32(src, bc, lo, hi) \
	VBROADCASTSS src, bc;     \
	VFMADD231PS  Z24, bc, lo; \
	VFMADD231PS  Z25, bc, hi

// R16 is one row of a 16-column step: B in Z24.
#define R16(src, bc, acc) \
	VBROADCASTSS src, bc; \
	VFMADD231PS  Z24, bc, acc

// R8C is one row of an 8-column step: B in Y12.
#define R8C(src, bc, acc) \
	VBROADCASTSS src, bc; \
	VFMADD231PS  Y12, bc, acc

// Row stores through SI, which walks C by ldc (R11); the A variants add C
// first.
#define A32(lo, hi) \
	VADDPS  (SI), lo, lo;     \
	VADDPS  64(SI), hi, hi;   \
	VMOVUPS lo, (SI);         \
	VMOVUPS hi, 64(SI);       \
	ADDQ    R11, SI

#define S32(lo, hi) \
	VMOVUPS lo, (SI);   \
	VMOVUPS hi, 64(SI); \
	ADDQ    R11, SI

#define A16(x) \
	VADDPS  (SI), x, x; \
	VMOVUPS x, (SI);    \
	ADDQ    R11, SI

#define S16(x) \
	VMOVUPS x, (SI); \
	ADDQ    R11, SI

// func panel512(k int, a *float32, rs, ps int, b *float32, ldb int, c *float32, ldc, n, acc int)
// C[12, n] (+)= A[12, k] B[k, n]; k >= 1, n%8 == 0.
TEXT ·panel512(SB), NOSPLIT, $0-80
	MOVQ rs+16(FP), R8
	SHLQ $2, R8
	MOVQ ps+24(FP), R9
	SHLQ $2, R9
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R10
	SHLQ $2, R10
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R11
	SHLQ $2, R11
	MOVQ n+64(FP), R13

cols32:
	CMPQ   R13, $32
	JLT    cols16
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	ABASES
	MOVQ   BX, CX
	MOVQ   k+0(FP), R14

k32:
	VMOVUPS (CX), Z24
	VMOVUPS 64(CX), Z25
	R32((SI), Z26, Z0, Z1)
	R32((SI)(R8*1), Z27, Z2, Z3)
	R32((SI)(R8*2), Z26, Z4, Z5)
	R32((DI), Z27, Z6, Z7)
	R32((DI)(R8*1), Z26, Z8, Z9)
	R32((DI)(R8*2), Z27, Z10, Z11)
	R32((R12), Z26, Z12, Z13)
	R32((R12)(R8*1), Z27, Z14, Z15)
	R32((R12)(R8*2), Z26, Z16, Z17)
	R32((AX), Z27, Z18, Z19)
	R32((AX)(R8*1), Z26, Z20, Z21)
	R32((AX)(R8*2), Z27, Z22, Z23)
	ANEXT
	JNZ     k32

	MOVQ DX, SI
	CMPQ acc+72(FP), $0
	JEQ  store32
	A32(Z0, Z1)
	A32(Z2, Z3)
	A32(Z4, Z5)
	A32(Z6, Z7)
	A32(Z8, Z9)
	A32(Z10, Z11)
	A32(Z12, Z13)
	A32(Z14, Z15)
	A32(Z16, Z17)
	A32(Z18, Z19)
	A32(Z20, Z21)
	A32(Z22, Z23)
	JMP  next32

store32:
	S32(Z0, Z1)
	S32(Z2, Z3)
	S32(Z4, Z5)
	S32(Z6, Z7)
	S32(Z8, Z9)
	S32(Z10, Z11)
	S32(Z12, Z13)
	S32(Z14, Z15)
	S32(Z16, Z17)
	S32(Z18, Z19)
	S32(Z20, Z21)
	S32(Z22, Z23)

next32:
	ADDQ $128, BX
	ADDQ $128, DX
	SUBQ $32, R13
	JMP  cols32

cols16:
	CMPQ   R13, $16
	JLT    cols8
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	ABASES
	MOVQ   BX, CX
	MOVQ   k+0(FP), R14

k16:
	VMOVUPS (CX), Z24
	R16((SI), Z26, Z0)
	R16((SI)(R8*1), Z27, Z1)
	R16((SI)(R8*2), Z26, Z2)
	R16((DI), Z27, Z3)
	R16((DI)(R8*1), Z26, Z4)
	R16((DI)(R8*2), Z27, Z5)
	R16((R12), Z26, Z6)
	R16((R12)(R8*1), Z27, Z7)
	R16((R12)(R8*2), Z26, Z8)
	R16((AX), Z27, Z9)
	R16((AX)(R8*1), Z26, Z10)
	R16((AX)(R8*2), Z27, Z11)
	ANEXT
	JNZ     k16

	MOVQ DX, SI
	CMPQ acc+72(FP), $0
	JEQ  store16
	A16(Z0)
	A16(Z1)
	A16(Z2)
	A16(Z3)
	A16(Z4)
	A16(Z5)
	A16(Z6)
	A16(Z7)
	A16(Z8)
	A16(Z9)
	A16(Z10)
	A16(Z11)
	JMP  next16

store16:
	S16(Z0)
	S16(Z1)
	S16(Z2)
	S16(Z3)
	S16(Z4)
	S16(Z5)
	S16(Z6)
	S16(Z7)
	S16(Z8)
	S16(Z9)
	S16(Z10)
	S16(Z11)

next16:
	ADDQ $64, BX
	ADDQ $64, DX
	SUBQ $16, R13

cols8:
	CMPQ   R13, $8
	JLT    panelDone
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
	ABASES
	MOVQ   BX, CX
	MOVQ   k+0(FP), R14

k8:
	VMOVUPS (CX), Y12
	R8C((SI), Y13, Y0)
	R8C((SI)(R8*1), Y14, Y1)
	R8C((SI)(R8*2), Y13, Y2)
	R8C((DI), Y14, Y3)
	R8C((DI)(R8*1), Y13, Y4)
	R8C((DI)(R8*2), Y14, Y5)
	R8C((R12), Y13, Y6)
	R8C((R12)(R8*1), Y14, Y7)
	R8C((R12)(R8*2), Y13, Y8)
	R8C((AX), Y14, Y9)
	R8C((AX)(R8*1), Y13, Y10)
	R8C((AX)(R8*2), Y14, Y11)
	ANEXT
	JNZ     k8

	MOVQ DX, SI
	CMPQ acc+72(FP), $0
	JEQ  store8
	A16(Y0)
	A16(Y1)
	A16(Y2)
	A16(Y3)
	A16(Y4)
	A16(Y5)
	A16(Y6)
	A16(Y7)
	A16(Y8)
	A16(Y9)
	A16(Y10)
	A16(Y11)
	JMP  panelDone

store8:
	S16(Y0)
	S16(Y1)
	S16(Y2)
	S16(Y3)
	S16(Y4)
	S16(Y5)
	S16(Y6)
	S16(Y7)
	S16(Y8)
	S16(Y9)
	S16(Y10)
	S16(Y11)

panelDone:
	VZEROUPPER
	RET

// ---- row kernels ----

// EXP2C loads the constants of EXP2Z into Z20-Z27.
#define EXP2C \
	VBROADCASTSS ·vc2Lo(SB), Z20; \
	VBROADCASTSS ·vc2C6(SB), Z21; \
	VBROADCASTSS ·vc2C5(SB), Z22; \
	VBROADCASTSS ·vc2C4(SB), Z23; \
	VBROADCASTSS ·vc2C3(SB), Z24; \
	VBROADCASTSS ·vc2C2(SB), Z25; \
	VBROADCASTSS ·vc2C1(SB), Z26; \
	VBROADCASTSS ·vcOne(SB), Z27

// EXP2Z sets x = 2^x in each of 16 lanes, 0 where x <= -126 (and for -Inf,
// NaN); clobbers t1, t2 and the mask k. See exp2f in exp.go: the same
// polynomial; VSCALEFPS applies 2^n.
#define EXP2Z(x, t1, t2, k) \
	VCMPPS      $0x1e, Z20, x, k; \
	VRNDSCALEPS $0, x, t1;        \
	VSUBPS      t1, x, x;         \
	VMOVAPS     Z21, t2;          \
	VFMADD213PS Z22, x, t2;       \
	VFMADD213PS Z23, x, t2;       \
	VFMADD213PS Z24, x, t2;       \
	VFMADD213PS Z25, x, t2;       \
	VFMADD213PS Z26, x, t2;       \
	VFMADD213PS Z27, x, t2;       \
	VSCALEFPS.Z t1, t2, k, x

// ZREDUCE reduces the 16 lanes of z (whose low halves are y and x) into
// lane 0 of x by op; clobbers ty, tx.
#define ZREDUCE(op, z, y, x, ty, tx) \
	VEXTRACTF64X4 $1, z, ty; \
	op            ty, y, y;  \
	HREDUCE(op, y, x, tx)

// func softmaxRow512(s *float32, n, npad int, ml *[2]float32, o *float32, no int)
TEXT ·softmaxRow512(SB), NOSPLIT, $0-48
	MOVQ    s+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    npad+16(FP), DX
	MOVQ    ml+24(FP), R8
	VMOVSS  (R8), X9             // m
	VMOVAPS X9, X10              // m' = m when no key is valid
	TESTQ   CX, CX
	JEQ     haveMax

	// X0 = max(s[:n]), two vectors at a time into Z0 and Z1
	VBROADCASTSS (SI), Z0
	VMOVAPS      Z0, Z1
	MOVQ         SI, DI
	MOVQ         CX, AX
	SHRQ         $5, AX
	JEQ          max16

maxLoop:
	VMAXPS (DI), Z0, Z0
	VMAXPS 64(DI), Z1, Z1
	ADDQ   $128, DI
	DECQ   AX
	JNZ    maxLoop

max16:
	TESTQ $16, CX
	JEQ   maxTail
	VMAXPS (DI), Z0, Z0
	ADDQ   $64, DI

maxTail:
	MOVQ CX, BX
	ANDQ $15, CX
	JEQ  maxReduce
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1                 // the n%16 lanes left
	VMAXPS (DI), Z1, K1, Z1

maxReduce:
	MOVQ BX, CX
	VMAXPS Z1, Z0, Z0
	ZREDUCE(VMAXPS, Z0, Y0, X0, Y1, X1)
	VMAXSS X0, X9, X10           // m' = max(m, max s)

haveMax:
	VUCOMISS ·vcNegInf(SB), X10
	JEQ      zeroRow512

	EXP2C
	// alpha = 2^(m - m') in all lanes of Z1
	VSUBSS       X10, X9, X1
	VBROADCASTSS X1, Z1
	EXP2Z(Z1, Z2, Z3, K2)

	VBROADCASTSS X10, Z6
	VPXORD       Z7, Z7, Z7      // sum
	MOVQ         SI, DI
	MOVQ         CX, AX
	SHRQ         $4, AX
	JEQ          softTail

softLoop:
	VMOVUPS (DI), Z0
	VSUBPS  Z6, Z0, Z0
	EXP2Z(Z0, Z2, Z3, K2)
	VMOVUPS Z0, (DI)
	VADDPS  Z0, Z7, Z7
	ADDQ    $64, DI
	DECQ    AX
	JNZ     softLoop

softTail:
	// Blocks from n rounded down to 16 up to npad: stored where j < npad,
	// zero where j >= n.
	MOVQ         CX, AX
	ANDQ         $-16, AX
	MOVQ         DX, BX
	SUBQ         AX, BX
	JLE          softSum
	ADDQ         $15, BX
	SHRQ         $4, BX
	MOVQ         CX, X12
	VPBROADCASTD X12, Z12        // n
	MOVQ         DX, X13
	VPBROADCASTD X13, Z13        // npad
	MOVQ         AX, X14
	VPBROADCASTD X14, Z14
	VPADDD       ·vzIota(SB), Z14, Z14 // column indices
	MOVL         $16, AX
	MOVQ         AX, X15
	VPBROADCASTD X15, Z15

softTailLoop:
	VPCMPGTD  Z14, Z13, K3       // npad > j
	VPCMPGTD  Z14, Z12, K4       // n > j
	VMOVUPS.Z (DI), K3, Z0
	VSUBPS    Z6, Z0, Z0
	EXP2Z(Z0, Z2, Z3, K2)
	VMOVAPS.Z Z0, K4, Z0
	VMOVUPS   Z0, K3, (DI)
	VADDPS    Z0, Z7, Z7
	VPADDD    Z15, Z14, Z14
	ADDQ      $64, DI
	DECQ      BX
	JNZ       softTailLoop

softSum:
	ZREDUCE(VADDPS, Z7, Y7, X7, Y8, X8)
	VMOVSS      4(R8), X2
	VFMADD213SS X7, X1, X2       // l' = l*alpha + sum
	VMOVSS      X10, (R8)
	VMOVSS      X2, 4(R8)

	VUCOMISS ·vcOne(SB), X1
	JEQ      softDone
	MOVQ     o+32(FP), DI
	MOVQ     no+40(FP), AX
	MOVQ     AX, BX
	SHRQ     $4, AX
	JEQ      rescale8

rescale:
	VMULPS  (DI), Z1, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	DECQ    AX
	JNZ     rescale

rescale8:
	TESTQ   $8, BX
	JEQ     softDone
	VMULPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)

softDone:
	VZEROUPPER
	RET

zeroRow512:
	VPXORD Z0, Z0, Z0
	MOVQ   DX, AX
	SHRQ   $4, AX
	JEQ    zero8

zeroLoop:
	VMOVUPS Z0, (SI)
	ADDQ    $64, SI
	DECQ    AX
	JNZ     zeroLoop

zero8:
	TESTQ   $8, DX
	JEQ     softDone
	VMOVUPS Y0, (SI)
	JMP     softDone

// func expRow512(s *float32, n, npad int, sub float32)
TEXT ·expRow512(SB), NOSPLIT, $0-28
	MOVQ         s+0(FP), DI
	MOVQ         n+8(FP), CX
	MOVQ         npad+16(FP), DX
	VBROADCASTSS sub+24(FP), Z6
	EXP2C
	MOVQ         CX, AX
	SHRQ         $4, AX
	JEQ          expRowTail

expRowLoop:
	VMOVUPS (DI), Z0
	VSUBPS  Z6, Z0, Z0
	EXP2Z(Z0, Z2, Z3, K2)
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	DECQ    AX
	JNZ     expRowLoop

expRowTail:
	MOVQ         CX, AX
	ANDQ         $-16, AX
	MOVQ         DX, BX
	SUBQ         AX, BX
	JLE          expRowDone
	ADDQ         $15, BX
	SHRQ         $4, BX
	MOVQ         CX, X12
	VPBROADCASTD X12, Z12
	MOVQ         DX, X13
	VPBROADCASTD X13, Z13
	MOVQ         AX, X14
	VPBROADCASTD X14, Z14
	VPADDD       ·vzIota(SB), Z14, Z14
	MOVL         $16, AX
	MOVQ         AX, X15
	VPBROADCASTD X15, Z15

expRowTailLoop:
	VPCMPGTD  Z14, Z13, K3
	VPCMPGTD  Z14, Z12, K4
	VMOVUPS.Z (DI), K3, Z0
	VSUBPS    Z6, Z0, Z0
	EXP2Z(Z0, Z2, Z3, K2)
	VMOVAPS.Z Z0, K4, Z0
	VMOVUPS   Z0, K3, (DI)
	VPADDD    Z15, Z14, Z14
	ADDQ      $64, DI
	DECQ      BX
	JNZ       expRowTailLoop

expRowDone:
	VZEROUPPER
	RET

// func dsRow512(p, dp *float32, n int, d float32)
TEXT ·dsRow512(SB), NOSPLIT, $0-28
	MOVQ         p+0(FP), SI
	MOVQ         dp+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS d+24(FP), Z8
	MOVQ         CX, AX
	SHRQ         $4, AX
	JEQ          ds8

dsLoop:
	VMOVUPS (DI), Z0
	VSUBPS  Z8, Z0, Z0
	VMULPS  (SI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    AX
	JNZ     dsLoop

ds8:
	TESTQ   $8, CX
	JEQ     dsDone
	VMOVUPS (DI), Y0
	VSUBPS  Y8, Y0, Y0
	VMULPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)

dsDone:
	VZEROUPPER
	RET

// EXPC loads the constants of EXPZ into Z16-Z26.
#define EXPC \
	VBROADCASTSS ·vcLo(SB), Z16;    \
	VBROADCASTSS ·vcHi(SB), Z17;    \
	VBROADCASTSS ·vcLog2e(SB), Z18; \
	VBROADCASTSS ·vcLn2Hi(SB), Z19; \
	VBROADCASTSS ·vcLn2Lo(SB), Z20; \
	VBROADCASTSS ·vcC6(SB), Z21;    \
	VBROADCASTSS ·vcC5(SB), Z22;    \
	VBROADCASTSS ·vcC4(SB), Z23;    \
	VBROADCASTSS ·vcC3(SB), Z24;    \
	VBROADCASTSS ·vcC2(SB), Z25;    \
	VBROADCASTSS ·vcOne(SB), Z26

// EXPZ sets x = e^x in each of 16 lanes; clobbers t1, t2. See expf in
// exp.go: the same reduction and polynomial; VSCALEFPS applies 2^n in one
// correctly rounded step, subnormal results included.
#define EXPZ(x, t1, t2) \
	VMAXPS       x, Z16, x;   \ // NaN stays NaN
	VMINPS       x, Z17, x;   \
	VMULPS       Z18, x, t1;  \
	VRNDSCALEPS  $0, t1, t1;  \ // n
	VFNMADD231PS Z19, t1, x;  \
	VFNMADD231PS Z20, t1, x;  \ // r = x - n ln2
	VMOVAPS      Z21, t2;     \
	VFMADD213PS  Z22, x, t2;  \
	VFMADD213PS  Z23, x, t2;  \
	VFMADD213PS  Z24, x, t2;  \
	VFMADD213PS  Z25, x, t2;  \
	VFMADD213PS  Z26, x, t2;  \
	VFMADD213PS  Z26, x, t2;  \ // e^r
	VSCALEFPS    t1, t2, x

// func exp512(dst, src *float32, n int)
TEXT ·exp512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	EXPC
	MOVQ CX, AX
	SHRQ $4, AX
	JEQ  expTail512

expLoop512:
	VMOVUPS (SI), Z0
	EXPZ(Z0, Z2, Z3)
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    AX
	JNZ     expLoop512

expTail512:
	ANDQ      $15, CX
	JEQ       expDone512
	MOVL      $1, AX
	SHLL      CX, AX
	DECL      AX
	KMOVW     AX, K1             // lane < n%16
	VMOVUPS.Z (SI), K1, Z0
	EXPZ(Z0, Z2, Z3)
	VMOVUPS   Z0, K1, (DI)

expDone512:
	VZEROUPPER
	RET

// func exp2_512(dst, src *float32, n int)
TEXT ·exp2_512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	EXP2C
	MOVQ CX, AX
	SHRQ $4, AX
	JEQ  exp2Tail512

exp2Loop512:
	VMOVUPS (SI), Z0
	EXP2Z(Z0, Z2, Z3, K2)
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    AX
	JNZ     exp2Loop512

exp2Tail512:
	ANDQ      $15, CX
	JEQ       exp2Done512
	MOVL      $1, AX
	SHLL      CX, AX
	DECL      AX
	KMOVW     AX, K1
	VMOVUPS.Z (SI), K1, Z0
	EXP2Z(Z0, Z2, Z3, K2)
	VMOVUPS   Z0, K1, (DI)

exp2Done512:
	VZEROUPPER
	RET
