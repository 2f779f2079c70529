/* Elementwise and small-product helpers for the kernels of _kernels.pyx (the include files in _kernel_src/).
 *
 * With GCC on x86-64 Linux every helper is compiled three times (AVX-512,
 * AVX2+FMA and the SSE2 baseline) and the best one for the running CPU is picked
 * when the module loads (target_clones).  When setup.py finds glibc's vector
 * math library it defines RNNFAST_USE_LIBMVEC and the tanh/exp loops vectorise
 * through libmvec's SIMD variants (accurate to a few ulp).  Elsewhere these are
 * plain loops over libm.  No -ffast-math: the one reduction (the softmax sum)
 * is split into independent partial sums by hand.
 *
 * _vecmath_impl.h holds the functions once, written for a type RF_T; it is
 * included twice below, for double (suffix _d) and float (suffix _f).
 */
#ifndef RNNFAST_VECMATH_H
#define RNNFAST_VECMATH_H

#include <math.h>
#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) \
    && !defined(RNNFAST_NO_CLONES)
#define RF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RF_CLONES
#endif

#if defined(RNNFAST_USE_LIBMVEC) && defined(__GNUC__) && !defined(__clang__)
/* Declare the SIMD variants that libmvec provides, so loops over these vectorise. */
__attribute__((simd("notinbranch"))) double tanh(double);
__attribute__((simd("notinbranch"))) float tanhf(float);
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) float expf(float);
#define RF_SIMD_MATH 1
#endif

/* Activation codes, the same numbers as the Activation enum (_kernel_src/elman.pxi). */
#define RF_ACT_TANH 0
#define RF_ACT_RELU 1
#define RF_ACT_SIGMOID 2

#define RF_T double
#define RF_NAME(base) base##_d
#define RF_TANH tanh
#define RF_EXP exp
#define RF_BLOCK 32
#include "_vecmath_impl.h"
#undef RF_T
#undef RF_NAME
#undef RF_TANH
#undef RF_EXP
#undef RF_BLOCK

#define RF_T float
#define RF_NAME(base) base##_f
#define RF_TANH tanhf
#define RF_EXP expf
#define RF_BLOCK 64
/* float only: a tail shorter than RF_PAD goes through one padded SIMD call (8
 * lanes, 256 bits: GCC prefers 256-bit vectors even on AVX-512).  Measured at
 * n_h = 5 and 50: 1.1-1.4x faster forward steps in float32, but 0.8x in
 * float64, where glibc's scalar tanh/exp beat a 4-lane libmvec call. */
#define RF_PAD 8
#include "_vecmath_impl.h"
#undef RF_T
#undef RF_NAME
#undef RF_TANH
#undef RF_EXP
#undef RF_BLOCK
#undef RF_PAD

#endif /* RNNFAST_VECMATH_H */
