// Macros of the AVX2+FMA assembly: the exponentials and a horizontal
// reduction. The vector constants ·vc* are in consts_amd64.s.

// EXP8 sets x = e^x in each lane; clobbers t1, t2, t3. See expf in exp.go.
#define EXP8(x, t1, t2, t3) \
	VMOVUPS      ·vcLo(SB), t1     \
	VMAXPS       x, t1, x            \ // NaN stays NaN
	VMOVUPS      ·vcHi(SB), t1     \
	VMINPS       x, t1, x            \
	VMULPS       ·vcLog2e(SB), x, t1 \
	VROUNDPS     $0, t1, t1          \ // n
	VFNMADD231PS ·vcLn2Hi(SB), t1, x \
	VFNMADD231PS ·vcLn2Lo(SB), t1, x \ // r = x - n ln2
	VMOVUPS      ·vcC6(SB), t2     \
	VFMADD213PS  ·vcC5(SB), x, t2  \
	VFMADD213PS  ·vcC4(SB), x, t2  \
	VFMADD213PS  ·vcC3(SB), x, t2  \
	VFMADD213PS  ·vcC2(SB), x, t2  \
	VFMADD213PS  ·vcOne(SB), x, t2    \
	VFMADD213PS  ·vcOne(SB), x, t2    \ // e^r
	VCVTPS2DQ    t1, t1              \
	VPSRAD       $1, t1, t3          \ // n1 = n>>1
	VPSUBD       t3, t1, t1          \ // n2 = n-n1
	VPADDD       ·vcBias(SB), t3, t3  \
	VPSLLD       $23, t3, t3         \ // 2^n1
	VPADDD       ·vcBias(SB), t1, t1  \
	VPSLLD       $23, t1, t1         \ // 2^n2
	VMULPS       t3, t2, t2          \
	VMULPS       t1, t2, x

// EXP2 sets x = 2^x in each lane, 0 where x <= -126 (and for -Inf, NaN);
// clobbers t1, t2, t3. See exp2f in exp.go.
#define EXP2(x, t1, t2, t3) \
	VCMPPS      $0x1e, ·vc2Lo(SB), x, t3 \ // x > -126
	VROUNDPS    $0, x, t1          \ // n
	VSUBPS      t1, x, x           \ // r = x - n
	VMOVUPS     ·vc2C6(SB), t2     \
	VFMADD213PS ·vc2C5(SB), x, t2  \
	VFMADD213PS ·vc2C4(SB), x, t2  \
	VFMADD213PS ·vc2C3(SB), x, t2  \
	VFMADD213PS ·vc2C2(SB), x, t2  \
	VFMADD213PS ·vc2C1(SB), x, t2  \
	VFMADD213PS ·vcOne(SB), x, t2  \ // 2^r
	VCVTPS2DQ   t1, t1             \
	VPSLLD      $23, t1, t1        \
	VPADDD      t1, t2, t2         \ // 2^r · 2^n
	VANDPS      t3, t2, x

// HREDUCE reduces the 8 lanes of y (whose low half is x) into lane 0 of x by
// op; clobbers tx.
#define HREDUCE(op, y, x, tx) \
	VEXTRACTF128 $1, y, tx  \
	op           tx, x, x   \
	VPERMILPS    $0x4e, x, tx \
	op           tx, x, x   \
	VPERMILPS    $0xb1, x, tx \
	op           tx, x, x
