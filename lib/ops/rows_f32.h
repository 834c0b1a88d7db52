/* float32 rows reduced by explicit vectors, shared by the CPU kernels that add up rows (lib/ops/reduce.c,
 * lib/ops/softmax.c).
 *
 * em__sum_f32: float32 lanes over short fixed blocks, the block sums added in double. Each term passes
 * through at most 6 float32 roundings (EM_SUM_F32_BLOCK terms: 4 added in order in each of 64 lanes, the lanes
 * folded in halves to 8) before its block sum reaches a double, so the error is at most about 6 u sum|x|
 * (u = 2^-24), whatever the length: below pairwise float32 summation's log2(n) u sum|x| from n = 64 on. Blocks
 * start at fixed offsets from the run's start. Twice as fast as widening every term to double (16 lanes a
 * vector instead of 8, no conversion per term); memory-bound on large arrays. CPU only; always inlined, so
 * that it is compiled for the caller's target (EM_HOT). */
#ifndef EMBER_ROWS_F32_H
#define EMBER_ROWS_F32_H

#include <stdint.h>
#include <string.h>

#define EM_SUM_F32_BLOCK 256 /* terms of a block: 4 to each of 64 lanes (four AVX-512 registers) */

/* GCC's vector types spell the lanes out, so that every build target (AVX-512, AVX2, SSE2) adds in the same
 * order; loads go through memcpy, which makes no alignment promise. Vectors pass by pointer: by value, their
 * calling convention would differ between the build targets. */
typedef float em_f32x16 __attribute__((vector_size(64)));
typedef float em_f32x8 __attribute__((vector_size(32)));
typedef double em_f64x8 __attribute__((vector_size(64)));
typedef int32_t em_i32x16 __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) void em__add_f32x16(em_f32x16 *acc, const float *p) {
    em_f32x16 v;
    memcpy(&v, p, sizeof v);
    *acc += v;
}

/* lo and hi += the 16 lanes of v, widened to double */
static inline __attribute__((always_inline)) void em__add_widened(em_f64x8 *lo, em_f64x8 *hi, const em_f32x16 *v) {
    *lo += __builtin_convertvector(__builtin_shufflevector(*v, *v, 0, 1, 2, 3, 4, 5, 6, 7), em_f64x8);
    *hi += __builtin_convertvector(__builtin_shufflevector(*v, *v, 8, 9, 10, 11, 12, 13, 14, 15), em_f64x8);
}

/* acc += the 16 lanes of v folded in halves to 8 (one float32 rounding), widened to double */
static inline __attribute__((always_inline)) void em__add_folded(em_f64x8 *acc, const em_f32x16 *v) {
    em_f32x8 half = __builtin_shufflevector(*v, *v, 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(*v, *v, 8, 9, 10, 11, 12, 13, 14, 15);
    *acc += __builtin_convertvector(half, em_f64x8);
}

static inline __attribute__((always_inline)) double em__sum_f32(const float *x, int64_t n) {
    em_f64x8 lo = {0}, hi = {0};
    int64_t i = 0;
    for (; i + EM_SUM_F32_BLOCK <= n; i += EM_SUM_F32_BLOCK) {
        em_f32x16 a = {0}, b = {0}, c = {0}, d = {0};
        for (int k = 0; k < EM_SUM_F32_BLOCK; k += 64) {
            em__add_f32x16(&a, x + i + k);
            em__add_f32x16(&b, x + i + k + 16);
            em__add_f32x16(&c, x + i + k + 32);
            em__add_f32x16(&d, x + i + k + 48);
        }
        a = (a + c) + (b + d);
        em__add_folded(&lo, &a);
    }
    /* the last partial block straight into the double lanes */
    for (; i + 16 <= n; i += 16) {
        em_f32x16 a;
        memcpy(&a, x + i, sizeof a);
        em__add_widened(&lo, &hi, &a);
    }
    double tail = 0;
    for (; i < n; i++) tail += x[i];
    lo += hi;
    return ((lo[0] + lo[4]) + (lo[2] + lo[6])) + ((lo[1] + lo[5]) + (lo[3] + lo[7])) + tail;
}

/* The largest of m and x[0, n), NaNs skipped (softmax's running maximum, nn_math.h's max): four vectors of
 * running maxima, so that no compare waits on the one before. */
static inline __attribute__((always_inline)) void em__max_step(em_f32x16 *m, const float *p) {
    em_f32x16 v;
    memcpy(&v, p, sizeof v);
    em_i32x16 take = v > *m;
    *m = (em_f32x16)((take & (em_i32x16)v) | (~take & (em_i32x16)*m));
}
static inline __attribute__((always_inline)) float em__max_f32(const float *x, int64_t n, float m) {
    int64_t i = 0;
    if (n >= 64) {
        em_f32x16 a = m - (em_f32x16){0}, b = a, c = a, d = a; /* every lane m */
        for (; i + 64 <= n; i += 64) {
            em__max_step(&a, x + i);
            em__max_step(&b, x + i + 16);
            em__max_step(&c, x + i + 32);
            em__max_step(&d, x + i + 48);
        }
        em_f32x16 q[4] = {a, b, c, d};
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 16; l++) m = q[k][l] > m ? q[k][l] : m;
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

#endif
