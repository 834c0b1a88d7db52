/* The per-element formulas of fused scaled dot-product attention, written
 * once for the CPU kernels (lib/ops/attention.c) and the CUDA ones
 * (gpu/attention.cu). The kernels only walk blocks of rows and keys and
 * multiply matrices; every exp, log, cut and division is here.
 *
 * For query row i and key j:  s = scale q_i.k_j + mask_ij   (key j visible)
 *   forward, online over key blocks with the running max m and sum l:
 *     p = exp(s - m), l = l exp(m_old - m) + sum p (the factor is prob(m_old, ref(m))), o = sum p v_j / l,
 *     lse = m + log(l)
 *   backward, from lse:  p = exp(s - lse), dp = do_i.v_j,
 *     ds = p (dp - delta_i), delta_i = do_i.o_i - dlse_i,
 *     dq_i = scale sum_j ds k_j, dk_j = scale sum_i ds q_i, dv_j = sum_i p do_i
 * A row that sees no key (its mask all -inf, or a causal row before the
 * first key) has m = -inf: its output is 0, its lse -inf, its gradients 0.
 *
 * EM_ATTN(name, T)(...) calls a formula for T = float or double (as nn_math.h:
 * a function per type in C, a template in CUDA). */
#ifndef EMBER_ATTENTION_MATH_H
#define EMBER_ATTENTION_MATH_H

#include <stdbool.h>
#include <stdint.h>

#include "../em_hd.h"
#include "../fast_math.h"

#ifdef __cplusplus
#define EM_ATTN(name, T) em_attn_##name<T>
#define EM_ATTN_DEF(T, ret, name) template <class T> EM_HD static inline ret em_attn_##name
#else
#define EM_ATTN(name, T) em_attn_##name##_##T
#define EM_ATTN_DEF(T, ret, name) EM_HD static inline ret em_attn_##name##_##T
#endif

/* The last key query row i of tq sees among tk keys: causal aligns the last
 * query with the last key (decoding with a cache of tk - tq earlier keys). */
EM_HD static inline int64_t em_attn_last_key(int64_t i, int64_t tq, int64_t tk, bool causal) {
    return causal ? i + tk - tq : tk - 1;
}

/* The scale the kernels use: 0 asks for 1/sqrt(d). */
EM_HD static inline double em_attn_scale(double scale, int64_t d) {
    return scale != 0 || d == 0 ? scale : 1 / sqrt((double)d);
}

/* The strides (elements) of a contiguous mask of rank ndim <= 4 over
 * [B, H, Tq, Tk], its dims right-aligned; 0 where it broadcasts. */
EM_HD static inline void em_attn_mask_strides(int ndim, const int64_t *shape, int64_t *ms) {
    int64_t stride = 1;
    for (int d = 3; d >= 0; d--) {
        int md = d - (4 - ndim);
        int64_t n = md >= 0 ? shape[md] : 1;
        ms[d] = n == 1 ? 0 : stride;
        stride *= n;
    }
}

#define EM_ATTN_FORMULAS(T)                                                                                            \
    /* a score from the product q.k: scaled, plus the mask's value (0 without one) */                                 \
    EM_ATTN_DEF(T, T, score)(T dot, T scale, T mask) { return dot * scale + mask; }                                   \
    /* the reference a row's exps are taken against: its max, or 0 while it is -inf (the row has seen no key, \
     * and exp(-inf - 0) = 0 where exp(-inf - -inf) would be NaN) */                                                  \
    EM_ATTN_DEF(T, T, ref)(T m) { return m == (T)-INFINITY ? (T)0 : m; }                                              \
    /* a probability exp(s - ref) against the row's running max (forward) or its lse (backward), through ref */        \
    EM_ATTN_DEF(T, T, prob)(T s, T ref) { return em_math_exp(s - ref); }                                              \
    /* the row's output from its accumulated sum of p v and its sum l of p */                                       \
    EM_ATTN_DEF(T, T, out_inv)(T l) { return l > (T)0 ? (T)1 / l : (T)0; }                                           \
    /* the row's log-sum-exp */                                                                                        \
    EM_ATTN_DEF(T, T, lse)(T m, T l) { return l > (T)0 ? m + em_math_log(l) : (T)-INFINITY; }                       \
    /* the gradient of a score from its probability, dp = do.v and the row's delta */                                 \
    EM_ATTN_DEF(T, T, dscore)(T p, T dp, T delta) { return p * (dp - delta); }

#ifdef __cplusplus
EM_ATTN_FORMULAS(T)
#else
EM_ATTN_FORMULAS(float)
EM_ATTN_FORMULAS(double)
#endif

#endif
