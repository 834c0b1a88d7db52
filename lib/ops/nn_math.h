/* The softmax and cross-entropy formulas, each written once and compiled
 * into both the C kernels (lib/ops/softmax.c) and the CUDA ones (gpu/nn.cu).
 * The kernels only walk rows, add up and scale by softmax_inv; every exp and
 * log of the family is here, through fast_math.h's em_math_* (float32 exp is
 * its polynomial, so the CPU's row loops vectorize and both devices use it).
 *
 * EM_NN(name, T)(...) calls a formula for T = float or double: in C the
 * function em_nn_<name>_<T>, stamped once per type; in CUDA's C++ the
 * template em_nn_<name><T>. Sums over a row are double; a row's terms and
 * outputs are T.
 *
 * Products that a sum follows go through EM_NN_MUL: the CPU build (ISO C)
 * never contracts a product and a sum into an FMA, and on the device it is
 * rounded on its own too, so both compute the same thing. */
#ifndef EMBER_NN_MATH_H
#define EMBER_NN_MATH_H

#include "../em_hd.h"
#include "../fast_math.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
#define EM_NN(name, T) em_nn_##name<T>
#define EM_NN_DEF(T, ret, name) template <class T> EM_HD static inline ret em_nn_##name
#define EM_NN_MUL(a, b) em_mul_rn(a, b)
#else
#define EM_NN(name, T) em_nn_##name##_##T
#define EM_NN_DEF(T, ret, name) EM_HD static inline ret em_nn_##name##_##T
#define EM_NN_MUL(a, b) ((a) * (b))
#endif

/* softmax over a row x:      m = max(x), e = exp(x - m), y = e / sum(e)
 * log_softmax:               y = (x - m) - log(sum(e))
 * softmax_grad (y, g):       dx = y (g - sum(g y))
 *   for log_softmax:         dx = g - exp(y) sum(g)
 * sigmoid_xent (z, x):       max(x, 0) - x z + log1p(exp(-|x|))
 * softmax_xent (z, x):       sum_j z_j (lse - x_j), lse = m + log(sum(e)); z_j = 0 adds nothing
 * sparse_softmax_xent:       lse - x[label], 0 for a label equal to ignore_index
 * bias_relu (y, bias):       relu(y + bias), a convolution's fused epilogue */
#define EM_NN_FORMULAS(T)                                                                                              \
    /* a row's running maximum: a NaN x is skipped (it makes the sum, so every output, NaN) */                       \
    EM_NN_DEF(T, T, max)(T m, T x) { return x > m ? x : m; }                                                          \
    /* a row's term exp(x - m), which sum(e) adds up: x - m <= 0 (m is the row's maximum), so the exp needs no  \
     * guard for large arguments */                                                                                    \
    EM_NN_DEF(T, T, softmax_exp)(T x, T m) { return em_math_exp_nonpositive(x - m); }                                 \
    /* softmax: the factor every e of the row is multiplied by */                                                     \
    EM_NN_DEF(T, T, softmax_inv)(double sum) { return (T)(1 / sum); }                                                 \
    /* log_softmax: y = (x - m) - log(sum), so that y's rounding error scales with y, not with m */                  \
    EM_NN_DEF(T, T, log_softmax_log_sum)(double sum) { return em_math_log_normal((T)sum); } /* sum >= 1 */          \
    EM_NN_DEF(T, T, log_softmax)(T x, T m, T log_sum) { return (x - m) - log_sum; }                                   \
    /* softmax_grad: the term of sum(g y), then dx from total = sum(g y) */                                           \
    EM_NN_DEF(T, T, softmax_grad_dot)(T g, T y) { return EM_NN_MUL(g, y); }                                           \
    EM_NN_DEF(T, T, softmax_grad)(T y, T g, T total) { return y * (g - total); }                                      \
    /* log_softmax's gradient, from total = sum(g); y, log_softmax's output, is <= 0 */                             \
    EM_NN_DEF(T, T, log_softmax_grad)(T y, T g, T total) { return g - EM_NN_MUL(em_math_exp_nonpositive(y), total); } \
    /* sigmoid cross entropy of labels z and logits x, stable for any x */                                            \
    EM_NN_DEF(T, T, sigmoid_xent)(T z, T x) {                                                                         \
        return (x > (T)0 ? x : (T)0) - EM_NN_MUL(x, z) + em_math_log1p(em_math_exp(-em_math_fabs(x)));              \
    }                                                                                                                  \
    /* the cross entropies' log(sum(exp(x))) of a row, in double */                                                   \
    EM_NN_DEF(T, double, xent_lse)(T m, double sum) { return m + em_math_log(sum); }                                 \
    /* softmax_xent: class j's term of the row's loss */                                                              \
    EM_NN_DEF(T, double, softmax_xent)(T z, T x, double lse) {                                                        \
        return z != 0 ? EM_NN_MUL((double)z, lse - x) : 0.0;                                                          \
    }                                                                                                                  \
    /* sparse_softmax_xent: the loss of a row from the logit of its label */                                          \
    EM_NN_DEF(T, T, sparse_softmax_xent)(double lse, T x_label) { return (T)(lse - x_label); }                       \
    /* conv2d_bias_relu's epilogue: the ops add and relu bit for bit (elementwise_math.h: -0 and NaN pass) */       \
    EM_NN_DEF(T, T, bias_relu)(T y, T bias) {                                                                         \
        T s = y + bias;                                                                                                \
        return s < (T)0 ? (T)0 : s;                                                                                    \
    }

/* sparse_softmax_xent with ignore_index (attributes i[0] = 1, i[1] = the index): whether a row's label counts;
 * a row that does not has loss 0 and gradient 0. */
EM_HD static inline bool em_nn_sparse_xent_counts(int64_t label, bool ignoring, int64_t ignore_index) {
    return !ignoring || label != ignore_index;
}

#ifdef __cplusplus
EM_NN_FORMULAS(T)
#else
EM_NN_FORMULAS(float)
EM_NN_FORMULAS(double)
#endif
#undef EM_NN_FORMULAS
#undef EM_NN_DEF

#endif
