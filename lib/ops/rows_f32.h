/* float32 rows reduced by explicit vectors, shared by the CPU kernels that add up rows (lib/ops/reduce.c,
 * lib/ops/softmax.c).
 *
 * em__sum_f32: float32 lanes over short fixed blocks, the block sums added in double. Each term passes
 * through at most 6 float32 roundings (EM_SUM_F32_BLOCK terms: 4 added in order in each of 64 lanes, the lanes
 * folded in halves to 8) before its block sum reaches a double, so the error is at most about 6 u sum|x|
 * (u = 2^-24), whatever the length: below pairwise float32 summation's log2(n) u sum|x| from n = 64 on. A
 * shorter row is one partial block, whose terms pass through at most 1, 2 or 3 roundings for 16, 32 or 48 to
 * 63 terms (a tail of up to 15 terms is added in double): fewer than pairwise summation's. Blocks start at
 * fixed offsets from the run's start. Twice as fast as widening every term to double (16 lanes a
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
typedef double em_f64x4 __attribute__((vector_size(32)));
typedef double em_f64x2 __attribute__((vector_size(16)));
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

/* em__sum_f32's blocked sum of n float32 terms, generated where they are added: the statement TERMS16(i, v)
 * sets the em_f32x16 v to terms [i, i + 16), the expression TERM(i) is term i alone (the tail); the double
 * `out` gets the sum. em__sum_f32 loads its terms; softmax's gradient adds the products g y as it computes
 * them, in the same order, instead of writing them out and reading them back. */
#define EM__SUM_F32_TERMS(n, TERMS16, TERM, out)                                                          \
    do {                                                                                                \
        em_f64x8 lo_ = {0};                                                                             \
        int64_t i_ = 0;                                                                                 \
        /* blocks of EM_SUM_F32_BLOCK terms, the last one partial (its missing vectors are zeros: exact \
         * adds), so a short row is a few float32 adds and one widening */                            \
        while (i_ + 16 <= (n)) {                                                                        \
            int64_t end_ = i_ + EM_SUM_F32_BLOCK <= (n) ? i_ + EM_SUM_F32_BLOCK : (n);                  \
            em_f32x16 a_ = {0}, b_ = {0}, c_ = {0}, d_ = {0}, v_;                                       \
            for (; i_ + 64 <= end_; i_ += 64) {                                                         \
                TERMS16(i_, v_);                                                                        \
                a_ += v_;                                                                               \
                TERMS16(i_ + 16, v_);                                                                   \
                b_ += v_;                                                                               \
                TERMS16(i_ + 32, v_);                                                                   \
                c_ += v_;                                                                               \
                TERMS16(i_ + 48, v_);                                                                   \
                d_ += v_;                                                                               \
            }                                                                                           \
            if (i_ + 16 <= end_) {                                                                      \
                TERMS16(i_, v_);                                                                        \
                a_ += v_;                                                                               \
                i_ += 16;                                                                               \
            }                                                                                           \
            if (i_ + 16 <= end_) {                                                                      \
                TERMS16(i_, v_);                                                                        \
                b_ += v_;                                                                               \
                i_ += 16;                                                                               \
            }                                                                                           \
            if (i_ + 16 <= end_) {                                                                      \
                TERMS16(i_, v_);                                                                        \
                c_ += v_;                                                                               \
                i_ += 16;                                                                               \
            }                                                                                           \
            a_ = (a_ + c_) + (b_ + d_);                                                                 \
            em__add_folded(&lo_, &a_);                                                                  \
        }                                                                                               \
        double tail_ = 0;                                                                               \
        for (; i_ < (n); i_++) tail_ += TERM(i_);                                                       \
        /* ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), by vector halves (lane by lane, its      \
         * extractions took a tenth of log_softmax's time over rows of 32) */                          \
        em_f64x4 h4_ = __builtin_shufflevector(lo_, lo_, 0, 1, 2, 3) + __builtin_shufflevector(lo_, lo_, 4, 5, 6, 7); \
        em_f64x2 h2_ = __builtin_shufflevector(h4_, h4_, 0, 1) + __builtin_shufflevector(h4_, h4_, 2, 3); \
        (out) = (h2_[0] + h2_[1]) + tail_;                                                              \
    } while (0)

static inline __attribute__((always_inline)) double em__sum_f32(const float *x, int64_t n) {
    double sum;
#define EM__SUM_LOAD16(i, v) memcpy(&(v), x + (i), sizeof(v))
#define EM__SUM_LOAD1(i) x[i]
    EM__SUM_F32_TERMS(n, EM__SUM_LOAD16, EM__SUM_LOAD1, sum);
#undef EM__SUM_LOAD16
#undef EM__SUM_LOAD1
    return sum;
}

/* The largest of m and x[0, n), NaNs skipped (softmax's running maximum, nn_math.h's max): four vectors of
 * running maxima, so that no compare waits on the one before; a row of 16 or more ends with its last 16
 * elements (some seen twice, which a maximum allows), and the vectors fold by halves, so that a short row
 * (32 floats) is a few vector steps, not a scalar loop. */
static inline __attribute__((always_inline)) void em__max_step(em_f32x16 *m, const em_f32x16 *v) {
    em_i32x16 take = *v > *m;
    *m = (em_f32x16)((take & (em_i32x16)*v) | (~take & (em_i32x16)*m));
}
static inline __attribute__((always_inline)) void em__max_load(em_f32x16 *m, const float *p) {
    em_f32x16 v;
    memcpy(&v, p, sizeof v);
    em__max_step(m, &v);
}
static inline __attribute__((always_inline)) float em__max_f32(const float *x, int64_t n, float m) {
    if (n < 16) {
        for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
        return m;
    }
    em_f32x16 a = m - (em_f32x16){0}, b = a, c = a, d = a; /* every lane m */
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        em__max_load(&a, x + i);
        em__max_load(&b, x + i + 16);
        em__max_load(&c, x + i + 32);
        em__max_load(&d, x + i + 48);
    }
    for (; i + 16 <= n; i += 16) em__max_load(&a, x + i);
    if (i < n) em__max_load(&b, x + n - 16);
    /* the lanes hold no NaN (a NaN is never taken), so the order of the folds does not matter */
    em__max_step(&a, &b);
    em__max_step(&c, &d);
    em__max_step(&a, &c);
    b = __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    em__max_step(&a, &b);
    b = __builtin_shufflevector(a, a, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3);
    em__max_step(&a, &b);
    b = __builtin_shufflevector(a, a, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1);
    em__max_step(&a, &b);
    return a[0] > a[1] ? a[0] : a[1];
}

#endif
