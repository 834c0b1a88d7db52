/* float32 math that vectorizes, shared by the elementwise formulas and the
 * softmax family on the CPU and the GPU: header-only, EM_HD static inline. */
#ifndef EMBER_FAST_MATH_H
#define EMBER_FAST_MATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "em_hd.h"

/* float32 exp, tanh and sigmoid as branch-free polynomials (Cephes' coefficients,
 * range reduction by ln 2 in two parts, the power of two built from its bits):
 * unlike glibc's expf and tanhf they vectorize. Their loops (EM_HOT_MATH) fuse
 * each a * b + c to one FMA where the CPU has it. Measured against
 * double-precision libm over every 97th float: exp within 1.003 ulp with FMA
 * (0.97 without), tanh within 1.31 ulp, sigmoid within 2.28 ulp (below 0, where
 * e^-|x|'s error passes whole into e / (1 + e)), either way; over every float
 * (with FMA), tanh within 1.33 ulp and sigmoid within 2.40 (2.83 before it had
 * its own exp and one division). test_elementwise checks every 2053rd float.
 * float64 keeps libm. */
EM_HD static inline float em__bits_to_float(int32_t i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* s e^r on the reduced range |r| <= ln2 / 2 for a power of two s (e^r - 1 times s
 * is exact, so s e^r rounds once, as e^r does), and the reduction c = n ln2 + r
 * (ln 2 in two parts, so r keeps its low bits). */
EM_HD static inline float em__expf_reduced_scaled(float r, float s) {
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return (p * r * r + r) * s + s;
}
EM_HD static inline float em__expf_reduced(float r) { return em__expf_reduced_scaled(r, 1.0f); }
/* r = c - n ln 2, ln 2 in two parts so that r keeps its low bits */
EM_HD static inline float em__expf_remainder(float c, float n) { return (c - n * 0.693359375f) + n * 2.12194440e-4f; }
EM_HD static inline float em__expf_reduce(float c, float *n) {
    *n = rintf(c * 1.44269504088896341f);
    return em__expf_remainder(c, *n);
}

/* For |c| < 2^22 ln 2: r = c - n ln 2, n = round(c / ln 2) read from the bits of the rounding add
 * c log2(e) + 1.5 2^23 (no float-to-integer conversion), and the power of two 2^(n + bias - 127) built from
 * them, for n + bias in [1, 254]. */
EM_HD static inline float em__expf_split(float c, uint32_t bias, float *r) {
    float t = c * 1.44269504088896341f + 12582912.0f; /* 1.5 2^23 + n: n in t's low bits */
    *r = em__expf_remainder(c, t - 12582912.0f);
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits << 23) + (bias << 23);
    float p;
    memcpy(&p, &bits, sizeof p);
    return p;
}

/* |x|, at most the float whose bits are `limit`, by an unsigned min of |x|'s bits, which compilers keep as
 * one instruction (a float min they turn into selects, pushing the arithmetic that follows into both
 * sides); a NaN becomes the limit, a finite stand-in for the callers to replace. */
EM_HD static inline float em__fabs_clamped(float x, uint32_t limit) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits &= 0x7fffffffu;
    bits = bits < limit ? bits : limit;
    float a;
    memcpy(&a, &bits, sizeof a);
    return a;
}

/* x is clamped to [-104, 89], where 2^n spans 2^-150 to 2^128: the two halves' product overflows to Inf
 * above ln(FLT_MAX) = 88.72 and rounds to 0 below ln(2^-150) = -103.97 by itself, with no select for
 * either end. The clamp is a max and a min (one instruction each on x86), under which a NaN, comparing
 * false, becomes -104: a finite stand-in, whose result is replaced at the end. */
EM_HD static inline float em__expf(float x) {
    float c = x > -104.0f ? x : -104.0f;
    c = c < 89.0f ? c : 89.0f;
    float n, p = em__expf_reduced(em__expf_reduce(c, &n));
    int32_t k = (int32_t)n, k1 = k >> 1; /* floor(k / 2): an arithmetic shift in GCC, Clang and nvcc */
    float y = p * em__bits_to_float((k1 + 127) << 23) * em__bits_to_float((k - k1 + 127) << 23);
    return x == x ? y : x;
}

/* tanh |x| = 1 - 2 / (e^2|x| + 1) from 0.625 up, with e^2|x| on [0, 18] only
 * (|x| clamped at 9, where tanh is 1 in float): there 2^n is one power of two
 * and nothing overflows, so the exp needs none of em__expf's guards, which
 * made tanh 2.9x slower (0.84 against 0.29 ns an element on one Zen 5 core,
 * in L2; 0.21 now). The clamp and n are em__expf_minus_abs's: an unsigned
 * min of |x|'s bits, and n from the bits of a rounding add. Both sides are
 * computed on |x| and take x's sign once at the end (tanh is odd, and so are
 * both formulas); a NaN selects the polynomial, which keeps it. */
EM_HD static inline float em__tanhf(float x) {
    float a = fabsf(x);
    float z = a * a; /* |x| < 0.625: |x| + |x|^3 P(x^2) */
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * a + a;
    float c = em__fabs_clamped(x, 0x41100000u); /* 9 */
    float r, e = em__expf_split(c + c, 127u, &r); /* 2^n, n = round(2c / ln 2) */
    float large = 1.0f - 2.0f / (e * em__expf_reduced(r) + 1.0f);
    return copysignf(a >= 0.625f ? large : small, x);
}

/* e^-|x|, for any x but NaN (which gives a finite stand-in, replaced by the callers below), with one power
 * of two and none of em__expf's guards: |x| is clamped at 104, where e^-|x| is 0 in float, so
 * n = round(-|x| / ln 2) spans [-150, 0] and e = (2^-24 e^r) 2^(n+24) needs one power of two, normal
 * throughout, and one multiply that rounds a denormal result once (em__fabs_clamped, em__expf_split). */
EM_HD static inline float em__expf_minus_abs(float x) {
    float r, e = em__expf_split(-em__fabs_clamped(x, 0x42d00000u), 151u, &r); /* |x| at most 104; 2^(n + 24) */
    return e * em__expf_reduced_scaled(r, 5.9604644775390625e-8f); /* 2^-24 e^r */
}

/* sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) below, e = e^-|x|: one exp, which cannot
 * overflow, and one division, whose quotient rounds once on either side. 23 vector instructions for
 * 16 elements, where the guarded em__expf and a multiply after the division took 42. */
EM_HD static inline float em__sigmoidf(float x) {
    float e = em__expf_minus_abs(x);
    float s = (x >= 0.0f ? 1.0f : e) / (1.0f + e);
    return x == x ? s : x;
}

/* e^x for x <= 0 (or NaN, which passes), as softmax takes it: e^(x - max) of a row. A positive x would
 * give e^-x: callers guarantee the sign. */
EM_HD static inline float em__expf_nonpositive(float x) {
    float e = em__expf_minus_abs(x);
    return x == x ? e : x;
}

/* log x for a positive normal x, +Inf or NaN (which pass), branch-free so that a loop of them vectorizes
 * (log_softmax's log of each row's sum, which is at least 1): x = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * taken from x's bits (no frexp), and log m = f - f^2 / 2 + f^3 P(f), f = m - 1, with Cephes'
 * coefficients; e ln 2 in two parts. Zero, denormals and negative x are not handled: callers guarantee
 * them away. Within 0.83 ulp of double-precision libm over every positive normal float (0.75 over every
 * 2053rd, the sample test_elementwise checks), with or without FMAs. */
EM_HD static inline float em__logf_normal(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint32_t shifted = bits - 0x3f3504f3u; /* sqrt(1/2)'s bits: m's range starts there */
    int32_t e = (int32_t)shifted >> 23;    /* an arithmetic shift in GCC, Clang and nvcc */
    bits = (shifted & 0x007fffffu) + 0x3f3504f3u;
    float m;
    memcpy(&m, &bits, sizeof m);
    float f = m - 1.0f, z = f * f, fe = (float)e;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    float y = p * f * z + fe * -2.12194440e-4f - 0.5f * z;
    float r = (f + y) + fe * 0.693359375f;
    return x == x && x < INFINITY ? r : x;
}

/* float64 sigmoid, the same form through libm's exp. */
EM_HD static inline double em__sigmoid(double x) {
    double e = exp(-fabs(x));
    return (x >= 0 ? 1.0 : e) / (1.0 + e);
}

/* Type-generic math for the shared formulas (elementwise_math.h, the softmax
 * rows): float32 exp and tanh are the polynomials above, everything else the
 * C library's function of the argument's type. C picks by _Generic; CUDA's
 * C++ by overloading, with the device's own float and double functions.
 * em_math_isnan is 0 for integer types. */
#ifdef __cplusplus
#define EM_MATH_1(name, ffn, dfn)                                                                                      \
    EM_HD static inline float name(float x) { return ffn(x); }                                                         \
    EM_HD static inline double name(double x) { return dfn(x); }
EM_MATH_1(em_math_exp, em__expf, exp)
EM_MATH_1(em_math_expm1, expm1f, expm1)
EM_MATH_1(em_math_log, logf, log)
EM_MATH_1(em_math_log1p, log1pf, log1p)
EM_MATH_1(em_math_erf, erff, erf)
EM_MATH_1(em_math_tanh, em__tanhf, tanh)
EM_MATH_1(em_math_sigmoid, em__sigmoidf, em__sigmoid)
EM_MATH_1(em_math_exp_nonpositive, em__expf_nonpositive, exp)
EM_MATH_1(em_math_log_normal, em__logf_normal, log)
EM_MATH_1(em_math_sqrt, sqrtf, sqrt)
EM_MATH_1(em_math_fabs, fabsf, fabs)
EM_MATH_1(em_math_sin, sinf, sin)
EM_MATH_1(em_math_cos, cosf, cos)
EM_MATH_1(em_math_tan, tanf, tan)
EM_MATH_1(em_math_floor, floorf, floor)
EM_MATH_1(em_math_ceil, ceilf, ceil)
EM_MATH_1(em_math_rint, rintf, rint)
/* Integer overloads: the formulas name them only in branches that floats take. */
EM_HD static inline int32_t em_math_fabs(int32_t x) { return x; }
EM_HD static inline int64_t em_math_fabs(int64_t x) { return x; }
EM_HD static inline uint8_t em_math_fabs(uint8_t x) { return x; }
EM_HD static inline float em_math_pow(float x, float y) { return powf(x, y); }
EM_HD static inline double em_math_pow(double x, double y) { return pow(x, y); }
EM_HD static inline float em_math_fmod(float x, float y) { return fmodf(x, y); }
EM_HD static inline double em_math_fmod(double x, double y) { return fmod(x, y); }
EM_HD static inline bool em_math_isnan(float x) { return x != x; }
EM_HD static inline bool em_math_isnan(double x) { return x != x; }
EM_HD static inline bool em_math_isnan(int64_t x) { return (void)x, false; }
EM_HD static inline bool em_math_isnan(int32_t x) { return (void)x, false; }
EM_HD static inline bool em_math_isnan(uint8_t x) { return (void)x, false; }
#undef EM_MATH_1
#else
#define EM_MATH_1(x, ffn, dfn) _Generic((x), float: ffn, default: dfn)(x)
#define em_math_exp(x) EM_MATH_1(x, em__expf, exp)
#define em_math_expm1(x) EM_MATH_1(x, expm1f, expm1)
#define em_math_log(x) EM_MATH_1(x, logf, log)
#define em_math_log1p(x) EM_MATH_1(x, log1pf, log1p)
#define em_math_erf(x) EM_MATH_1(x, erff, erf)
#define em_math_tanh(x) EM_MATH_1(x, em__tanhf, tanh)
#define em_math_sigmoid(x) EM_MATH_1(x, em__sigmoidf, em__sigmoid)
#define em_math_exp_nonpositive(x) EM_MATH_1(x, em__expf_nonpositive, exp)
#define em_math_log_normal(x) EM_MATH_1(x, em__logf_normal, log)
#define em_math_sqrt(x) EM_MATH_1(x, sqrtf, sqrt)
#define em_math_sin(x) EM_MATH_1(x, sinf, sin)
#define em_math_cos(x) EM_MATH_1(x, cosf, cos)
#define em_math_tan(x) EM_MATH_1(x, tanf, tan)
#define em_math_floor(x) EM_MATH_1(x, floorf, floor)
#define em_math_ceil(x) EM_MATH_1(x, ceilf, ceil)
#define em_math_rint(x) EM_MATH_1(x, rintf, rint)
/* Integers only in branches that floats take (as the C++ overloads above). */
static inline int64_t em__fabs_integer(int64_t x) { return x; }
#define em_math_fabs(x) _Generic((x), float: fabsf, double: fabs, default: em__fabs_integer)(x)
#define em_math_pow(x, y) _Generic((x), float: powf, default: pow)(x, y)
#define em_math_fmod(x, y) _Generic((x), float: fmodf, default: fmod)(x, y)
static inline bool em__isnan_float(float x) { return x != x; }
static inline bool em__isnan_double(double x) { return x != x; }
static inline bool em__isnan_integer(int64_t x) { return (void)x, false; }
#define em_math_isnan(x) _Generic((x), float: em__isnan_float, double: em__isnan_double, default: em__isnan_integer)(x)
#endif

#endif
