/* The layer norm and RMS norm formulas, each written once and compiled into
 * both the C kernels (lib/ops/norm.c) and the CUDA ones (gpu/norm.cu). The
 * kernels only walk rows and add up (sums in double); every per-element
 * expression is here. RMS norm is layer norm with the mean held at 0, no
 * beta, and no mean term in its gradient.
 *
 * Over a row x of n elements (mean m, 0 for RMS norm; r the reciprocal std):
 *   r  = 1 / sqrt(mean((x - m)^2) + eps)
 *   y  = (x - m) r gamma + beta
 *   backward, with xh = (x - m) r, gy = dy gamma,
 *   a = mean(gy) (0 for RMS norm), b = mean(gy xh):
 *   dx = r (gy - a - xh b),  dgamma = sum over rows of dy xh,  dbeta = sum of dy
 *
 * EM_NORM(name, T)(...) calls a formula for T = float or double, as EM_NN
 * does (nn_math.h). Products that a sum follows go through EM_NORM_MUL, so
 * that neither compiler fuses them into an FMA and both devices agree. */
#ifndef EMBER_NORM_MATH_H
#define EMBER_NORM_MATH_H

#include "../em_hd.h"
#include "../fast_math.h"

#ifdef __cplusplus
#define EM_NORM(name, T) em_norm_##name<T>
#define EM_NORM_DEF(T, ret, name) template <class T> EM_HD static inline ret em_norm_##name
#define EM_NORM_MUL(a, b) em_mul_rn(a, b)
#else
#define EM_NORM(name, T) em_norm_##name##_##T
#define EM_NORM_DEF(T, ret, name) EM_HD static inline ret em_norm_##name##_##T
#define EM_NORM_MUL(a, b) ((a) * (b))
#endif

#define EM_NORM_FORMULAS(T)                                                                                            \
    /* a term of the row's sum of squared deviations */                                                              \
    EM_NORM_DEF(T, T, sq_dev)(T x, T m) { return EM_NORM_MUL(x - m, x - m); }                                         \
    /* the reciprocal std from that sum over n elements */                                                           \
    EM_NORM_DEF(T, T, rstd)(double sum_sq, int64_t n, double eps) {                                                   \
        return (T)(1 / em_math_sqrt(sum_sq / (double)n + eps));                                                      \
    }                                                                                                                  \
    /* the normalized element */                                                                                     \
    EM_NORM_DEF(T, T, xhat)(T x, T m, T r) { return (x - m) * r; }                                                    \
    EM_NORM_DEF(T, T, y)(T x, T m, T r, T g, T b) { return EM_NORM_MUL((x - m) * r, g) + b; }                        \
    /* the backward pass's per-element gradient of the normalized element */                                        \
    EM_NORM_DEF(T, T, gy)(T dy, T g) { return dy * g; }                                                               \
    /* the terms of the sums of gy xh (b) and of dy xh (dgamma) */                                                  \
    EM_NORM_DEF(T, T, times_xh)(T v, T xh) { return EM_NORM_MUL(v, xh); }                                             \
    EM_NORM_DEF(T, T, dx)(T gy, T xh, T r, T a, T b) { return r * (gy - a - EM_NORM_MUL(xh, b)); }

#ifdef __cplusplus
EM_NORM_FORMULAS(T)
#else
EM_NORM_FORMULAS(float)
EM_NORM_FORMULAS(double)
#endif
#undef EM_NORM_FORMULAS
#undef EM_NORM_DEF

#endif
