//go:build amd64 && !purego

#include "textflag.h"
#include "exp_amd64.h"

// AVX2+FMA inner loops of the attention kernel; see kernels.go for what
// each computes.

// func panelAVX(k int, a *float32, rs, ps int, b *float32, ldb int, c *float32, ldc, n, acc int)
// C[6, n] (+)= A[6, k] B[k, n]; A(r, p) at a[r*rs+p*ps]; k >= 1, n%8 == 0.
TEXT ·panelAVX(SB), NOSPLIT, $0-80
	MOVQ k+0(FP), R12
	MOVQ a+8(FP), AX
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

cols16:
	CMPQ R13, $16
	JLT  cols8
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
	MOVQ AX, SI
	LEAQ (AX)(R8*2), DI
	ADDQ R8, DI
	MOVQ BX, CX
	MOVQ R12, R14

k16:
	VMOVUPS      (CX), Y12
	VMOVUPS      32(CX), Y13
	VBROADCASTSS (SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS (SI)(R8*1), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS (SI)(R8*2), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS (DI), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS (DI)(R8*1), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS (DI)(R8*2), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	ADDQ         R9, SI
	ADDQ         R9, DI
	ADDQ         R10, CX
	DECQ         R14
	JNZ          k16

	LEAQ (DX)(R11*2), SI
	ADDQ R11, SI
	CMPQ acc+72(FP), $0
	JEQ  store16
	VADDPS (DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	VADDPS (DX)(R11*1), Y2, Y2
	VADDPS 32(DX)(R11*1), Y3, Y3
	VADDPS (DX)(R11*2), Y4, Y4
	VADDPS 32(DX)(R11*2), Y5, Y5
	VADDPS (SI), Y6, Y6
	VADDPS 32(SI), Y7, Y7
	VADDPS (SI)(R11*1), Y8, Y8
	VADDPS 32(SI)(R11*1), Y9, Y9
	VADDPS (SI)(R11*2), Y10, Y10
	VADDPS 32(SI)(R11*2), Y11, Y11

store16:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (DX)(R11*1)
	VMOVUPS Y3, 32(DX)(R11*1)
	VMOVUPS Y4, (DX)(R11*2)
	VMOVUPS Y5, 32(DX)(R11*2)
	VMOVUPS Y6, (SI)
	VMOVUPS Y7, 32(SI)
	VMOVUPS Y8, (SI)(R11*1)
	VMOVUPS Y9, 32(SI)(R11*1)
	VMOVUPS Y10, (SI)(R11*2)
	VMOVUPS Y11, 32(SI)(R11*2)
	ADDQ    $64, BX
	ADDQ    $64, DX
	SUBQ    $16, R13
	JMP     cols16

cols8:
	CMPQ R13, $8
	JLT  panelDone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	MOVQ AX, SI
	LEAQ (AX)(R8*2), DI
	ADDQ R8, DI
	MOVQ BX, CX
	MOVQ R12, R14

k8:
	VMOVUPS      (CX), Y12
	VBROADCASTSS (SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VBROADCASTSS (SI)(R8*1), Y15
	VFMADD231PS  Y12, Y15, Y1
	VBROADCASTSS (SI)(R8*2), Y14
	VFMADD231PS  Y12, Y14, Y2
	VBROADCASTSS (DI), Y15
	VFMADD231PS  Y12, Y15, Y3
	VBROADCASTSS (DI)(R8*1), Y14
	VFMADD231PS  Y12, Y14, Y4
	VBROADCASTSS (DI)(R8*2), Y15
	VFMADD231PS  Y12, Y15, Y5
	ADDQ         R9, SI
	ADDQ         R9, DI
	ADDQ         R10, CX
	DECQ         R14
	JNZ          k8

	LEAQ (DX)(R11*2), SI
	ADDQ R11, SI
	CMPQ acc+72(FP), $0
	JEQ  store8
	VADDPS (DX), Y0, Y0
	VADDPS (DX)(R11*1), Y1, Y1
	VADDPS (DX)(R11*2), Y2, Y2
	VADDPS (SI), Y3, Y3
	VADDPS (SI)(R11*1), Y4, Y4
	VADDPS (SI)(R11*2), Y5, Y5

store8:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, (DX)(R11*1)
	VMOVUPS Y2, (DX)(R11*2)
	VMOVUPS Y3, (SI)
	VMOVUPS Y4, (SI)(R11*1)
	VMOVUPS Y5, (SI)(R11*2)

panelDone:
	VZEROUPPER
	RET

// func softmaxRowAVX(s *float32, n, npad int, ml *[2]float32, o *float32, no int)
TEXT ·softmaxRowAVX(SB), NOSPLIT, $0-48
	MOVQ    s+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    npad+16(FP), DX
	MOVQ    ml+24(FP), R8
	VMOVSS  (R8), X9             // m
	VMOVAPS X9, X10              // m' = m when no key is valid
	TESTQ   CX, CX
	JEQ     haveMax

	// X0 = max(s[:n]), two vectors at a time into Y0 and Y1
	VBROADCASTSS (SI), Y0
	VMOVAPS      Y0, Y1
	MOVQ         SI, DI
	MOVQ         CX, AX
	SHRQ         $4, AX
	JEQ          max8

maxLoop:
	VMAXPS (DI), Y0, Y0
	VMAXPS 32(DI), Y1, Y1
	ADDQ   $64, DI
	DECQ   AX
	JNZ    maxLoop

max8:
	TESTQ $8, CX
	JEQ   maxReduce
	VMAXPS (DI), Y0, Y0
	ADDQ   $32, DI

maxReduce:
	VMAXPS Y1, Y0, Y0
	HREDUCE(VMAXPS, Y0, X0, X1)
	MOVQ CX, AX
	ANDQ $7, AX
	JEQ  maxDone

maxTail:
	VMAXSS (DI), X0, X0
	ADDQ   $4, DI
	DECQ   AX
	JNZ    maxTail

maxDone:
	VMAXSS X0, X9, X10           // m' = max(m, max s)

haveMax:
	VUCOMISS ·vcNegInf(SB), X10
	JEQ      zeroRow

	// alpha = 2^(m - m') in all lanes of Y1
	VSUBSS       X10, X9, X1
	VBROADCASTSS X1, Y1
	EXP2(Y1, Y2, Y3, Y4)

	VBROADCASTSS X10, Y6
	VXORPS       Y7, Y7, Y7      // sum
	MOVQ         SI, DI
	MOVQ         CX, AX
	SHRQ         $3, AX
	JEQ          softTail

softLoop:
	VMOVUPS (DI), Y0
	VSUBPS  Y6, Y0, Y0
	EXP2(Y0, Y2, Y3, Y4)
	VMOVUPS Y0, (DI)
	VADDPS  Y0, Y7, Y7
	ADDQ    $32, DI
	DECQ    AX
	JNZ     softLoop

softTail:
	// Blocks from n rounded down to 8 up to npad, masked to j < n.
	MOVQ         CX, AX
	ANDQ         $-8, AX
	MOVQ         DX, BX
	SUBQ         AX, BX
	SHRQ         $3, BX
	JEQ          softSum
	MOVQ         CX, X8
	VPBROADCASTD X8, Y8          // n
	MOVQ         AX, X9
	VPBROADCASTD X9, Y9
	VPADDD       ·vcIota(SB), Y9, Y9 // column indices

softTailLoop:
	VMOVUPS  (DI), Y0
	VSUBPS   Y6, Y0, Y0
	EXP2(Y0, Y2, Y3, Y4)
	VPCMPGTD Y9, Y8, Y11         // n > j
	VANDPS   Y11, Y0, Y0
	VMOVUPS  Y0, (DI)
	VADDPS   Y0, Y7, Y7
	VPADDD   ·vcEight(SB), Y9, Y9
	ADDQ     $32, DI
	DECQ     BX
	JNZ      softTailLoop

softSum:
	HREDUCE(VADDPS, Y7, X7, X8)
	VMOVSS      4(R8), X2
	VFMADD213SS X7, X1, X2       // l' = l*alpha + sum
	VMOVSS      X10, (R8)
	VMOVSS      X2, 4(R8)

	VUCOMISS ·vcOne(SB), X1
	JEQ      softDone
	MOVQ     o+32(FP), DI
	MOVQ     no+40(FP), AX
	SHRQ     $3, AX
	JEQ      softDone

rescale:
	VMULPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    AX
	JNZ     rescale

softDone:
	VZEROUPPER
	RET

zeroRow:
	VXORPS Y0, Y0, Y0
	MOVQ   DX, AX
	SHRQ   $3, AX
	JEQ    softDone

zeroLoop:
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    AX
	JNZ     zeroLoop
	JMP     softDone

// func expRowAVX(s *float32, n, npad int, sub float32)
TEXT ·expRowAVX(SB), NOSPLIT, $0-28
	MOVQ         s+0(FP), DI
	MOVQ         n+8(FP), CX
	MOVQ         npad+16(FP), DX
	VBROADCASTSS sub+24(FP), Y6
	MOVQ         CX, AX
	SHRQ         $3, AX
	JEQ          expRowTail

expRowLoop:
	VMOVUPS (DI), Y0
	VSUBPS  Y6, Y0, Y0
	EXP2(Y0, Y2, Y3, Y4)
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    AX
	JNZ     expRowLoop

expRowTail:
	MOVQ         CX, AX
	ANDQ         $-8, AX
	MOVQ         DX, BX
	SUBQ         AX, BX
	SHRQ         $3, BX
	JEQ          expRowDone
	MOVQ         CX, X8
	VPBROADCASTD X8, Y8
	MOVQ         AX, X9
	VPBROADCASTD X9, Y9
	VPADDD       ·vcIota(SB), Y9, Y9

expRowTailLoop:
	VMOVUPS  (DI), Y0
	VSUBPS   Y6, Y0, Y0
	EXP2(Y0, Y2, Y3, Y4)
	VPCMPGTD Y9, Y8, Y11
	VANDPS   Y11, Y0, Y0
	VMOVUPS  Y0, (DI)
	VPADDD   ·vcEight(SB), Y9, Y9
	ADDQ     $32, DI
	DECQ     BX
	JNZ      expRowTailLoop

expRowDone:
	VZEROUPPER
	RET

// func dsRowAVX(p, dp *float32, n int, d float32)
TEXT ·dsRowAVX(SB), NOSPLIT, $0-28
	MOVQ         p+0(FP), SI
	MOVQ         dp+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS d+24(FP), Y8
	SHRQ         $3, CX
	JEQ          dsDone

dsLoop:
	VMOVUPS (DI), Y0
	VSUBPS  Y8, Y0, Y0
	VMULPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     dsLoop

dsDone:
	VZEROUPPER
	RET
