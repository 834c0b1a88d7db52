/* Reduction plans and index helpers shared by the CPU kernels (lib/ops/reduce.c,
 * lib/ops/shape.c) and the CUDA kernels: header-only, static inline, no libc
 * except log_sum_exp's formula at the end.
 *
 * A reduction over a set of axes of an [d0, ..., dn-1] tensor is planned by
 * dropping size-1 axes and merging neighbouring axes that are both kept or
 * both reduced (and lie next to each other in memory). What is left is a
 * sequence of kept and reduced groups. The innermost group, when it has
 * stride 1, becomes either `inner` (kept: a run of neighbouring outputs that
 * read neighbouring inputs, e.g. column sums) or `run` (reduced: each output
 * reads contiguous runs, e.g. row sums). Output element (o, b), o < outer,
 * b < inner, reads, for its reduced linear index r = s * run + j (s < steps,
 * j < run), the input element at
 *     em_plan_offset(nkeep, kdim, kstride, o) + em_plan_offset(nred, rdim, rstride, s) + j + b.
 * Visiting r in increasing order is the row-major order of the reduced axes. */
#ifndef EMBER_REDUCE_PLAN_H
#define EMBER_REDUCE_PLAN_H

#include <math.h>
#include <stdint.h>

#include "em_hd.h"
#include "fast_math.h"

#define EM_PLAN_MAX_DIMS 8

typedef struct em_reduce_plan {
    int nkeep, nred; /* merged groups, outermost first, without inner/run */
    int64_t kdim[EM_PLAN_MAX_DIMS], kstride[EM_PLAN_MAX_DIMS];
    int64_t rdim[EM_PLAN_MAX_DIMS], rstride[EM_PLAN_MAX_DIMS];
    int64_t inner; /* innermost kept group with stride 1; else 1 */
    int64_t run;   /* innermost reduced group with stride 1; else 1 */
    int64_t outer; /* output elements / inner */
    int64_t steps; /* reduced elements per output / run */
    int64_t count; /* reduced elements per output */
} em_reduce_plan;

/* Offset of linear index idx < dim[0] * ... * dim[n-1] (row-major) given strides. What is left of idx at the
 * outermost group is its index there, so one group (the usual case) costs no division: the kernels call this
 * once a row. */
static inline EM_HD int64_t em_plan_offset(int n, const int64_t *dim, const int64_t *stride, int64_t idx) {
    if (n == 0) return 0;
    int64_t off = 0;
    for (int k = n - 1; k > 0; k--) {
        off += (idx % dim[k]) * stride[k];
        idx /= dim[k];
    }
    return off + idx * stride[0];
}

/* Plans the reduction of a tensor of `shape` and `strides` (elements) over the
 * axes whose bit is set in `mask` (bit d: axis d). */
static inline EM_HD void em_reduce_plan_init(em_reduce_plan *p, int ndim, const int64_t *shape, const int64_t *strides,
                                             uint64_t mask) {
    int64_t gdim[EM_PLAN_MAX_DIMS], gstride[EM_PLAN_MAX_DIMS];
    int gred[EM_PLAN_MAX_DIMS], ng = 0;
    p->count = 1;
    int64_t nout = 1;
    for (int d = 0; d < ndim; d++) {
        int red = (int)((mask >> d) & 1u);
        if (red) p->count *= shape[d];
        else nout *= shape[d];
        if (shape[d] == 1) continue;
        /* Merge into the previous group when it is of the same kind and the
         * two axes are one block of memory. */
        if (ng && gred[ng - 1] == red && gstride[ng - 1] == strides[d] * shape[d]) {
            gdim[ng - 1] *= shape[d];
            gstride[ng - 1] = strides[d];
            continue;
        }
        gdim[ng] = shape[d];
        gstride[ng] = strides[d];
        gred[ng] = red;
        ng++;
    }
    p->inner = 1;
    p->run = 1;
    if (ng && gstride[ng - 1] == 1) {
        if (gred[ng - 1]) p->run = gdim[ng - 1];
        else p->inner = gdim[ng - 1];
        ng--;
    }
    p->nkeep = p->nred = 0;
    for (int g = 0; g < ng; g++) {
        if (gred[g]) {
            p->rdim[p->nred] = gdim[g];
            p->rstride[p->nred++] = gstride[g];
        } else {
            p->kdim[p->nkeep] = gdim[g];
            p->kstride[p->nkeep++] = gstride[g];
        }
    }
    if (p->count == 0) p->run = 1; /* nothing to read: keep divisions by run defined */
    p->outer = p->inner ? nout / p->inner : 0;
    p->steps = p->count / p->run;
}

/* Input offset of the first element that output row o reads at reduction step s. */
static inline EM_HD int64_t em_plan_at(const em_reduce_plan *p, int64_t o, int64_t s) {
    return em_plan_offset(p->nkeep, p->kdim, p->kstride, o) + em_plan_offset(p->nred, p->rdim, p->rstride, s);
}

/* Shape of reducing `shape` over `mask`: kept axes, and size-1 axes in place
 * of the reduced ones when keepdims. Returns the output rank. */
static inline EM_HD int em_reduce_shape(int ndim, const int64_t *shape, uint64_t mask, int keepdims, int64_t *out) {
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (!((mask >> d) & 1u)) out[n++] = shape[d];
        else if (keepdims) out[n++] = 1;
    }
    return n;
}

/* log_sum_exp's formula, shared by lib/ops/reduce.c and gpu/reduce.cu. With m
 * the maximum of an output's elements x (a first pass), the terms
 * em_lse_term(x, m) = exp(x - m) are summed in double, and the result is
 * em_lse_result(m, sum) = m + log(sum) in the input's type; an infinite or NaN
 * m is the result itself. em_lse_result is type-generic (float, double): C
 * picks by _Generic, CUDA's C++ by overloading. */
EM_HD static inline double em_lse_term(double x, double m) { return em_math_exp(x - m); }
EM_HD static inline float em_lse_result_f32(float m, double sum) {
    return isfinite((double)m) ? (float)((double)m + em_math_log(sum)) : m;
}
EM_HD static inline double em_lse_result_f64(double m, double sum) {
    return isfinite(m) ? m + em_math_log(sum) : m;
}
#ifdef __cplusplus
EM_HD static inline float em_lse_result(float m, double sum) { return em_lse_result_f32(m, sum); }
EM_HD static inline double em_lse_result(double m, double sum) { return em_lse_result_f64(m, sum); }
#else
#define em_lse_result(m, sum) _Generic((m), float: em_lse_result_f32, default: em_lse_result_f64)(m, sum)
#endif

#endif
