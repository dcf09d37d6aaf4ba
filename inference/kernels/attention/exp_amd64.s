//go:build amd64 && !purego

#include "textflag.h"
#include "exp_amd64.h"

// func expAVX(dst, src *float32, n int)
TEXT ·expAVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ CX, AX
	SHRQ $3, AX
	JEQ  expTail

expLoop:
	VMOVUPS (SI), Y0
	EXP8(Y0, Y2, Y3, Y4)
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    AX
	JNZ     expLoop

expTail:
	ANDQ         $7, CX
	JEQ          expDone
	MOVQ         CX, X8
	VPBROADCASTD X8, Y8
	VMOVUPS      ·vcIota(SB), Y9
	VPCMPGTD     Y9, Y8, Y10     // lane < n%8
	VMASKMOVPS   (SI), Y10, Y0
	EXP8(Y0, Y2, Y3, Y4)
	VMASKMOVPS   Y0, Y10, (DI)

expDone:
	VZEROUPPER
	RET

// func exp2AVX(dst, src *float32, n int)
TEXT ·exp2AVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ CX, AX
	SHRQ $3, AX
	JEQ  exp2Tail

exp2Loop:
	VMOVUPS (SI), Y0
	EXP2(Y0, Y2, Y3, Y4)
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    AX
	JNZ     exp2Loop

exp2Tail:
	ANDQ         $7, CX
	JEQ          exp2Done
	MOVQ         CX, X8
	VPBROADCASTD X8, Y8
	VMOVUPS      ·vcIota(SB), Y9
	VPCMPGTD     Y9, Y8, Y10
	VMASKMOVPS   (SI), Y10, Y0
	EXP2(Y0, Y2, Y3, Y4)
	VMASKMOVPS   Y0, Y10, (DI)

exp2Done:
	VZEROUPPER
	RET
