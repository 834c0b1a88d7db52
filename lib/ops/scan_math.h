/* The scans' arithmetic, shared by the CPU kernels (lib/ops/scan.c) and the
 * CUDA ones (gpu/scan.cu). A contiguous tensor scanned along an axis is seen
 * as [outer, n, inner]: outer * inner lines of n elements, line l starting at
 * em_scan_line_start(l, n, inner) and stepping by inner. Float scans
 * accumulate in double (as em_sum does) and round each output; integer ones
 * wrap like the dtype. */
#ifndef EMBER_SCAN_MATH_H
#define EMBER_SCAN_MATH_H

#include <stdbool.h>
#include <stdint.h>

#include "../dtype_convert.h"

EM_HD static inline int64_t em_scan_line_start(int64_t l, int64_t n, int64_t inner) {
    return l / inner * n * inner + l % inner;
}

/* The accumulator of a dtype class (dtype_convert.h): double, or the wrapping unsigned type. */
#define EM_SCAN_ACC_FLT(U) double
#define EM_SCAN_ACC_SGN(U) U
#define EM_SCAN_ACC_UNS(U) U
#define EM_SCAN_INIT_cumsum 0
#define EM_SCAN_INIT_cumprod 1
#define EM_SCAN_OP_cumsum(a, v) ((a) + (v))
#define EM_SCAN_OP_cumprod(a, v) ((a) * (v))

/* For op `name` and each numeric dtype:
 *   em_scan_<name>_<sfx>_acc: the accumulator type;
 *   em_scan_<name>_<sfx>_step(&acc, v, exclusive): the output for element v
 *     (the accumulator before v when exclusive, after it otherwise) and acc advanced;
 *   em_scan_<name>_<sfx>(x, y, n, step, exclusive, reverse): one line, from
 *     its last element back when reverse. */
#define EM_SCAN_DEFINE(E, sfx, T, U, C, MN, MX, name)                                                                  \
    typedef EM_SCAN_ACC_##C(U) em_scan_##name##_##sfx##_acc;                                                           \
    EM_HD static inline T em_scan_##name##_##sfx##_step(em_scan_##name##_##sfx##_acc *acc, T v, bool exclusive) {      \
        em_scan_##name##_##sfx##_acc before = *acc;                                                                    \
        *acc = (em_scan_##name##_##sfx##_acc)EM_SCAN_OP_##name(before, (em_scan_##name##_##sfx##_acc)v);               \
        return (T)(exclusive ? before : *acc);                                                                         \
    }                                                                                                                  \
    EM_HD static inline void em_scan_##name##_##sfx(const T *x, T *y, int64_t n, int64_t step, bool exclusive,         \
                                                     bool reverse) {                                                   \
        em_scan_##name##_##sfx##_acc acc = EM_SCAN_INIT_##name;                                                        \
        for (int64_t k = 0; k < n; k++) {                                                                              \
            int64_t at = (reverse ? n - 1 - k : k) * step;                                                             \
            y[at] = em_scan_##name##_##sfx##_step(&acc, x[at], exclusive);                                             \
        }                                                                                                              \
    }
EM_FOR_NUMERIC(EM_SCAN_DEFINE, cumsum)
EM_FOR_NUMERIC(EM_SCAN_DEFINE, cumprod)

#endif
