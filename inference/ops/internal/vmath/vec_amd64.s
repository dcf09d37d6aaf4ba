#include "textflag.h"

// Vector constants: each is 8 float32 copies (32 bytes), so that it can be a
// VEX memory operand. Generated from the values in the comments.

// one = 1.0
DATA one<>+0(SB)/4, $0x3f800000
DATA one<>+4(SB)/4, $0x3f800000
DATA one<>+8(SB)/4, $0x3f800000
DATA one<>+12(SB)/4, $0x3f800000
DATA one<>+16(SB)/4, $0x3f800000
DATA one<>+20(SB)/4, $0x3f800000
DATA one<>+24(SB)/4, $0x3f800000
DATA one<>+28(SB)/4, $0x3f800000
GLOBL one<>(SB), RODATA|NOPTR, $32

// half = 0.5
DATA half<>+0(SB)/4, $0x3f000000
DATA half<>+4(SB)/4, $0x3f000000
DATA half<>+8(SB)/4, $0x3f000000
DATA half<>+12(SB)/4, $0x3f000000
DATA half<>+16(SB)/4, $0x3f000000
DATA half<>+20(SB)/4, $0x3f000000
DATA half<>+24(SB)/4, $0x3f000000
DATA half<>+28(SB)/4, $0x3f000000
GLOBL half<>(SB), RODATA|NOPTR, $32

// rsqrt2 = 0.7071067811865476
DATA rsqrt2<>+0(SB)/4, $0x3f3504f3
DATA rsqrt2<>+4(SB)/4, $0x3f3504f3
DATA rsqrt2<>+8(SB)/4, $0x3f3504f3
DATA rsqrt2<>+12(SB)/4, $0x3f3504f3
DATA rsqrt2<>+16(SB)/4, $0x3f3504f3
DATA rsqrt2<>+20(SB)/4, $0x3f3504f3
DATA rsqrt2<>+24(SB)/4, $0x3f3504f3
DATA rsqrt2<>+28(SB)/4, $0x3f3504f3
GLOBL rsqrt2<>(SB), RODATA|NOPTR, $32

// explo = -87.0
DATA explo<>+0(SB)/4, $0xc2ae0000
DATA explo<>+4(SB)/4, $0xc2ae0000
DATA explo<>+8(SB)/4, $0xc2ae0000
DATA explo<>+12(SB)/4, $0xc2ae0000
DATA explo<>+16(SB)/4, $0xc2ae0000
DATA explo<>+20(SB)/4, $0xc2ae0000
DATA explo<>+24(SB)/4, $0xc2ae0000
DATA explo<>+28(SB)/4, $0xc2ae0000
GLOBL explo<>(SB), RODATA|NOPTR, $32

// exphi = 88.0
DATA exphi<>+0(SB)/4, $0x42b00000
DATA exphi<>+4(SB)/4, $0x42b00000
DATA exphi<>+8(SB)/4, $0x42b00000
DATA exphi<>+12(SB)/4, $0x42b00000
DATA exphi<>+16(SB)/4, $0x42b00000
DATA exphi<>+20(SB)/4, $0x42b00000
DATA exphi<>+24(SB)/4, $0x42b00000
DATA exphi<>+28(SB)/4, $0x42b00000
GLOBL exphi<>(SB), RODATA|NOPTR, $32

// log2e = 1.4426950408889634
DATA log2e<>+0(SB)/4, $0x3fb8aa3b
DATA log2e<>+4(SB)/4, $0x3fb8aa3b
DATA log2e<>+8(SB)/4, $0x3fb8aa3b
DATA log2e<>+12(SB)/4, $0x3fb8aa3b
DATA log2e<>+16(SB)/4, $0x3fb8aa3b
DATA log2e<>+20(SB)/4, $0x3fb8aa3b
DATA log2e<>+24(SB)/4, $0x3fb8aa3b
DATA log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL log2e<>(SB), RODATA|NOPTR, $32

// ln2hi = 0.693359375
DATA ln2hi<>+0(SB)/4, $0x3f318000
DATA ln2hi<>+4(SB)/4, $0x3f318000
DATA ln2hi<>+8(SB)/4, $0x3f318000
DATA ln2hi<>+12(SB)/4, $0x3f318000
DATA ln2hi<>+16(SB)/4, $0x3f318000
DATA ln2hi<>+20(SB)/4, $0x3f318000
DATA ln2hi<>+24(SB)/4, $0x3f318000
DATA ln2hi<>+28(SB)/4, $0x3f318000
GLOBL ln2hi<>(SB), RODATA|NOPTR, $32

// ln2lo = -0.00021219444
DATA ln2lo<>+0(SB)/4, $0xb95e8083
DATA ln2lo<>+4(SB)/4, $0xb95e8083
DATA ln2lo<>+8(SB)/4, $0xb95e8083
DATA ln2lo<>+12(SB)/4, $0xb95e8083
DATA ln2lo<>+16(SB)/4, $0xb95e8083
DATA ln2lo<>+20(SB)/4, $0xb95e8083
DATA ln2lo<>+24(SB)/4, $0xb95e8083
DATA ln2lo<>+28(SB)/4, $0xb95e8083
GLOBL ln2lo<>(SB), RODATA|NOPTR, $32

// c2 = 0.5
DATA c2<>+0(SB)/4, $0x3f000000
DATA c2<>+4(SB)/4, $0x3f000000
DATA c2<>+8(SB)/4, $0x3f000000
DATA c2<>+12(SB)/4, $0x3f000000
DATA c2<>+16(SB)/4, $0x3f000000
DATA c2<>+20(SB)/4, $0x3f000000
DATA c2<>+24(SB)/4, $0x3f000000
DATA c2<>+28(SB)/4, $0x3f000000
GLOBL c2<>(SB), RODATA|NOPTR, $32

// c3 = 0.16666666666666666
DATA c3<>+0(SB)/4, $0x3e2aaaab
DATA c3<>+4(SB)/4, $0x3e2aaaab
DATA c3<>+8(SB)/4, $0x3e2aaaab
DATA c3<>+12(SB)/4, $0x3e2aaaab
DATA c3<>+16(SB)/4, $0x3e2aaaab
DATA c3<>+20(SB)/4, $0x3e2aaaab
DATA c3<>+24(SB)/4, $0x3e2aaaab
DATA c3<>+28(SB)/4, $0x3e2aaaab
GLOBL c3<>(SB), RODATA|NOPTR, $32

// c4 = 0.041666666666666664
DATA c4<>+0(SB)/4, $0x3d2aaaab
DATA c4<>+4(SB)/4, $0x3d2aaaab
DATA c4<>+8(SB)/4, $0x3d2aaaab
DATA c4<>+12(SB)/4, $0x3d2aaaab
DATA c4<>+16(SB)/4, $0x3d2aaaab
DATA c4<>+20(SB)/4, $0x3d2aaaab
DATA c4<>+24(SB)/4, $0x3d2aaaab
DATA c4<>+28(SB)/4, $0x3d2aaaab
GLOBL c4<>(SB), RODATA|NOPTR, $32

// c5 = 0.008333333333333333
DATA c5<>+0(SB)/4, $0x3c088889
DATA c5<>+4(SB)/4, $0x3c088889
DATA c5<>+8(SB)/4, $0x3c088889
DATA c5<>+12(SB)/4, $0x3c088889
DATA c5<>+16(SB)/4, $0x3c088889
DATA c5<>+20(SB)/4, $0x3c088889
DATA c5<>+24(SB)/4, $0x3c088889
DATA c5<>+28(SB)/4, $0x3c088889
GLOBL c5<>(SB), RODATA|NOPTR, $32

// c6 = 0.001388888888888889
DATA c6<>+0(SB)/4, $0x3ab60b61
DATA c6<>+4(SB)/4, $0x3ab60b61
DATA c6<>+8(SB)/4, $0x3ab60b61
DATA c6<>+12(SB)/4, $0x3ab60b61
DATA c6<>+16(SB)/4, $0x3ab60b61
DATA c6<>+20(SB)/4, $0x3ab60b61
DATA c6<>+24(SB)/4, $0x3ab60b61
DATA c6<>+28(SB)/4, $0x3ab60b61
GLOBL c6<>(SB), RODATA|NOPTR, $32

// c7 = 0.0001984126984126984
DATA c7<>+0(SB)/4, $0x39500d01
DATA c7<>+4(SB)/4, $0x39500d01
DATA c7<>+8(SB)/4, $0x39500d01
DATA c7<>+12(SB)/4, $0x39500d01
DATA c7<>+16(SB)/4, $0x39500d01
DATA c7<>+20(SB)/4, $0x39500d01
DATA c7<>+24(SB)/4, $0x39500d01
DATA c7<>+28(SB)/4, $0x39500d01
GLOBL c7<>(SB), RODATA|NOPTR, $32

// p0 = -1.26551223
DATA p0<>+0(SB)/4, $0xbfa1fc4e
DATA p0<>+4(SB)/4, $0xbfa1fc4e
DATA p0<>+8(SB)/4, $0xbfa1fc4e
DATA p0<>+12(SB)/4, $0xbfa1fc4e
DATA p0<>+16(SB)/4, $0xbfa1fc4e
DATA p0<>+20(SB)/4, $0xbfa1fc4e
DATA p0<>+24(SB)/4, $0xbfa1fc4e
DATA p0<>+28(SB)/4, $0xbfa1fc4e
GLOBL p0<>(SB), RODATA|NOPTR, $32

// p1 = 1.00002368
DATA p1<>+0(SB)/4, $0x3f8000c7
DATA p1<>+4(SB)/4, $0x3f8000c7
DATA p1<>+8(SB)/4, $0x3f8000c7
DATA p1<>+12(SB)/4, $0x3f8000c7
DATA p1<>+16(SB)/4, $0x3f8000c7
DATA p1<>+20(SB)/4, $0x3f8000c7
DATA p1<>+24(SB)/4, $0x3f8000c7
DATA p1<>+28(SB)/4, $0x3f8000c7
GLOBL p1<>(SB), RODATA|NOPTR, $32

// p2 = 0.37409196
DATA p2<>+0(SB)/4, $0x3ebf88fb
DATA p2<>+4(SB)/4, $0x3ebf88fb
DATA p2<>+8(SB)/4, $0x3ebf88fb
DATA p2<>+12(SB)/4, $0x3ebf88fb
DATA p2<>+16(SB)/4, $0x3ebf88fb
DATA p2<>+20(SB)/4, $0x3ebf88fb
DATA p2<>+24(SB)/4, $0x3ebf88fb
DATA p2<>+28(SB)/4, $0x3ebf88fb
GLOBL p2<>(SB), RODATA|NOPTR, $32

// p3 = 0.09678418
DATA p3<>+0(SB)/4, $0x3dc636c9
DATA p3<>+4(SB)/4, $0x3dc636c9
DATA p3<>+8(SB)/4, $0x3dc636c9
DATA p3<>+12(SB)/4, $0x3dc636c9
DATA p3<>+16(SB)/4, $0x3dc636c9
DATA p3<>+20(SB)/4, $0x3dc636c9
DATA p3<>+24(SB)/4, $0x3dc636c9
DATA p3<>+28(SB)/4, $0x3dc636c9
GLOBL p3<>(SB), RODATA|NOPTR, $32

// p4 = -0.18628806
DATA p4<>+0(SB)/4, $0xbe3ec24c
DATA p4<>+4(SB)/4, $0xbe3ec24c
DATA p4<>+8(SB)/4, $0xbe3ec24c
DATA p4<>+12(SB)/4, $0xbe3ec24c
DATA p4<>+16(SB)/4, $0xbe3ec24c
DATA p4<>+20(SB)/4, $0xbe3ec24c
DATA p4<>+24(SB)/4, $0xbe3ec24c
DATA p4<>+28(SB)/4, $0xbe3ec24c
GLOBL p4<>(SB), RODATA|NOPTR, $32

// p5 = 0.27886807
DATA p5<>+0(SB)/4, $0x3e8ec7cc
DATA p5<>+4(SB)/4, $0x3e8ec7cc
DATA p5<>+8(SB)/4, $0x3e8ec7cc
DATA p5<>+12(SB)/4, $0x3e8ec7cc
DATA p5<>+16(SB)/4, $0x3e8ec7cc
DATA p5<>+20(SB)/4, $0x3e8ec7cc
DATA p5<>+24(SB)/4, $0x3e8ec7cc
DATA p5<>+28(SB)/4, $0x3e8ec7cc
GLOBL p5<>(SB), RODATA|NOPTR, $32

// p6 = -1.13520398
DATA p6<>+0(SB)/4, $0xbf914e5d
DATA p6<>+4(SB)/4, $0xbf914e5d
DATA p6<>+8(SB)/4, $0xbf914e5d
DATA p6<>+12(SB)/4, $0xbf914e5d
DATA p6<>+16(SB)/4, $0xbf914e5d
DATA p6<>+20(SB)/4, $0xbf914e5d
DATA p6<>+24(SB)/4, $0xbf914e5d
DATA p6<>+28(SB)/4, $0xbf914e5d
GLOBL p6<>(SB), RODATA|NOPTR, $32

// p7 = 1.48851587
DATA p7<>+0(SB)/4, $0x3fbe87b0
DATA p7<>+4(SB)/4, $0x3fbe87b0
DATA p7<>+8(SB)/4, $0x3fbe87b0
DATA p7<>+12(SB)/4, $0x3fbe87b0
DATA p7<>+16(SB)/4, $0x3fbe87b0
DATA p7<>+20(SB)/4, $0x3fbe87b0
DATA p7<>+24(SB)/4, $0x3fbe87b0
DATA p7<>+28(SB)/4, $0x3fbe87b0
GLOBL p7<>(SB), RODATA|NOPTR, $32

// p8 = -0.82215223
DATA p8<>+0(SB)/4, $0xbf527892
DATA p8<>+4(SB)/4, $0xbf527892
DATA p8<>+8(SB)/4, $0xbf527892
DATA p8<>+12(SB)/4, $0xbf527892
DATA p8<>+16(SB)/4, $0xbf527892
DATA p8<>+20(SB)/4, $0xbf527892
DATA p8<>+24(SB)/4, $0xbf527892
DATA p8<>+28(SB)/4, $0xbf527892
GLOBL p8<>(SB), RODATA|NOPTR, $32

// p9 = 0.17087277
DATA p9<>+0(SB)/4, $0x3e2ef945
DATA p9<>+4(SB)/4, $0x3e2ef945
DATA p9<>+8(SB)/4, $0x3e2ef945
DATA p9<>+12(SB)/4, $0x3e2ef945
DATA p9<>+16(SB)/4, $0x3e2ef945
DATA p9<>+20(SB)/4, $0x3e2ef945
DATA p9<>+24(SB)/4, $0x3e2ef945
DATA p9<>+28(SB)/4, $0x3e2ef945
GLOBL p9<>(SB), RODATA|NOPTR, $32

// absmask clears the sign bit.
DATA absmask<>+0(SB)/4, $0x7fffffff
DATA absmask<>+4(SB)/4, $0x7fffffff
DATA absmask<>+8(SB)/4, $0x7fffffff
DATA absmask<>+12(SB)/4, $0x7fffffff
DATA absmask<>+16(SB)/4, $0x7fffffff
DATA absmask<>+20(SB)/4, $0x7fffffff
DATA absmask<>+24(SB)/4, $0x7fffffff
DATA absmask<>+28(SB)/4, $0x7fffffff
GLOBL absmask<>(SB), RODATA|NOPTR, $32

// neghalf = -0.5
DATA neghalf<>+0(SB)/4, $0xbf000000
DATA neghalf<>+4(SB)/4, $0xbf000000
DATA neghalf<>+8(SB)/4, $0xbf000000
DATA neghalf<>+12(SB)/4, $0xbf000000
DATA neghalf<>+16(SB)/4, $0xbf000000
DATA neghalf<>+20(SB)/4, $0xbf000000
DATA neghalf<>+24(SB)/4, $0xbf000000
DATA neghalf<>+28(SB)/4, $0xbf000000
GLOBL neghalf<>(SB), RODATA|NOPTR, $32

// invsqrt2pi = 1/sqrt(2 pi)
DATA invsqrt2pi<>+0(SB)/4, $0x3ecc422a
DATA invsqrt2pi<>+4(SB)/4, $0x3ecc422a
DATA invsqrt2pi<>+8(SB)/4, $0x3ecc422a
DATA invsqrt2pi<>+12(SB)/4, $0x3ecc422a
DATA invsqrt2pi<>+16(SB)/4, $0x3ecc422a
DATA invsqrt2pi<>+20(SB)/4, $0x3ecc422a
DATA invsqrt2pi<>+24(SB)/4, $0x3ecc422a
DATA invsqrt2pi<>+28(SB)/4, $0x3ecc422a
GLOBL invsqrt2pi<>(SB), RODATA|NOPTR, $32

// EXP8 sets X = e^X for 8 float32 lanes, clamping X to [-87, 88] first;
// K and R are scratch. X = k*ln2 + r (k = round(X*log2e), ln2 split in two
// for an exact k*ln2hi), e^r is its degree-7 Taylor polynomial (truncation
// error < 6e-9 for |r| <= ln2/2), and 2^k goes into the exponent bits.
#define EXP8(X, K, R) \
	VMAXPS       explo<>(SB), X, X; \
	VMINPS       exphi<>(SB), X, X; \
	VMULPS       log2e<>(SB), X, K; \
	VROUNDPS     $0, K, K; \
	VFNMADD231PS ln2hi<>(SB), K, X; \
	VFNMADD231PS ln2lo<>(SB), K, X; \
	VMOVUPS      c7<>(SB), R; \
	VFMADD213PS  c6<>(SB), X, R; \
	VFMADD213PS  c5<>(SB), X, R; \
	VFMADD213PS  c4<>(SB), X, R; \
	VFMADD213PS  c3<>(SB), X, R; \
	VFMADD213PS  c2<>(SB), X, R; \
	VFMADD213PS  one<>(SB), X, R; \
	VFMADD213PS  one<>(SB), X, R; \
	VCVTPS2DQ    K, K; \
	VPSLLD       $23, K, K; \
	VPADDD       K, R, X

// PHI8 sets P = Phi(X), the standard normal CDF, for 8 float32 lanes of X
// (kept); A, B and T are scratch: with z = |x|/sqrt2 and t = 1/(1+z/2),
// h = 0.5*t*e^(P(t) - z^2) is 0.5*erfc(z) (P: Numerical Recipes'
// erfcc), and Phi = x < 0 ? h : 1-h.
#define PHI8(X, P, A, B, T) \
	VANDPS       absmask<>(SB), X, A; \
	VMULPS       rsqrt2<>(SB), A, A; \
	VMULPS       half<>(SB), A, B; \
	VADDPS       one<>(SB), B, B; \
	VMOVUPS      one<>(SB), P; \
	VDIVPS       B, P, T; \
	VMOVUPS      p9<>(SB), P; \
	VFMADD213PS  p8<>(SB), T, P; \
	VFMADD213PS  p7<>(SB), T, P; \
	VFMADD213PS  p6<>(SB), T, P; \
	VFMADD213PS  p5<>(SB), T, P; \
	VFMADD213PS  p4<>(SB), T, P; \
	VFMADD213PS  p3<>(SB), T, P; \
	VFMADD213PS  p2<>(SB), T, P; \
	VFMADD213PS  p1<>(SB), T, P; \
	VFMADD213PS  p0<>(SB), T, P; \
	VFNMADD231PS A, A, P; \
	EXP8(P, A, B); \
	VMULPS       T, P, P; \
	VMULPS       half<>(SB), P, P; \
	VMOVUPS      one<>(SB), B; \
	VSUBPS       P, B, B; \
	VBLENDVPS    X, P, B, P

// func expAVX2(dst, src *float32, n int)
// dst[i] = e^src[i] for i < n, n a multiple of 8.
TEXT ·expAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   expdone

exploop:
	VMOVUPS (SI), Y0
	EXP8(Y0, Y1, Y2)
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     exploop

expdone:
	VZEROUPPER
	RET

// func sigmoidAVX2(dst, src *float32, n int, negAlpha float32)
// dst[i] = 1/(1+e^(negAlpha*src[i])) for i < n, n a multiple of 8.
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-28
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS negAlpha+24(FP), Y5
	SHRQ         $3, CX
	JZ           sigdone

sigloop:
	VMOVUPS (SI), Y0
	VMULPS  Y5, Y0, Y0
	EXP8(Y0, Y1, Y2)
	VADDPS  one<>(SB), Y0, Y0
	VMOVUPS one<>(SB), Y1
	VDIVPS  Y0, Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     sigloop

sigdone:
	VZEROUPPER
	RET

// func phiAVX2(dst, src *float32, n int)
// dst[i] = Phi(src[i]), the standard normal CDF, for i < n, n a multiple
// of 8 (PHI8).
TEXT ·phiAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   phidone

philoop:
	VMOVUPS (SI), Y6
	PHI8(Y6, Y3, Y0, Y1, Y7)
	VMOVUPS Y3, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	DECQ         CX
	JNZ          philoop

phidone:
	VZEROUPPER
	RET


// func gegluGradAVX2(da, dg, a, gate, dy *float32, n int)
// For i < n, n a multiple of 8, with g = gate[i]: da[i] = dy[i]*g*Phi(g)
// and dg[i] = dy[i]*a[i]*(Phi(g) + g*pdf(g)), the gradients of
// a*GELU(gate), in one pass: Phi by PHI8, pdf from one more e^x.
TEXT ·gegluGradAVX2(SB), NOSPLIT, $0-48
	MOVQ da+0(FP), DI
	MOVQ dg+8(FP), DX
	MOVQ a+16(FP), R8
	MOVQ gate+24(FP), SI
	MOVQ dy+32(FP), R9
	MOVQ n+40(FP), CX
	SHRQ $3, CX
	JZ   ggdone

ggloop:
	VMOVUPS      (SI), Y6
	PHI8(Y6, Y3, Y0, Y1, Y7)           // Y3 = Phi(g)
	VMULPS       neghalf<>(SB), Y6, Y4
	VMULPS       Y6, Y4, Y4
	EXP8(Y4, Y0, Y1)                   // Y4 = e^(-g*g/2)
	VMOVUPS      (R9), Y5              // dy
	VMULPS       Y6, Y5, Y8
	VMULPS       Y3, Y8, Y8
	VMOVUPS      Y8, (DI)              // da = dy*g*Phi
	VMULPS       Y6, Y4, Y4
	VMULPS       invsqrt2pi<>(SB), Y4, Y4
	VADDPS       Y3, Y4, Y4            // GELU'(g) = Phi + g*pdf
	VMULPS       (R8), Y5, Y5
	VMULPS       Y5, Y4, Y4
	VMOVUPS      Y4, (DX)              // dg = GELU'(g)*dy*a
	ADDQ         $32, SI
	ADDQ         $32, R8
	ADDQ         $32, R9
	ADDQ         $32, DI
	ADDQ         $32, DX
	DECQ         CX
	JNZ          ggloop

ggdone:
	VZEROUPPER
	RET
