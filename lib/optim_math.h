/* The optimizers' update rules (TensorFlow 1's; lib/optim.c's opening comment
 * states them), each written once for one element and compiled into both the
 * CPU loops (lib/optim.c) and the CUDA kernels (gpu/optim.cu).
 *
 * EM_OPTIM_STAMP(T, sfx) stamps, for T float (f32) and double (f64):
 *   em_optim_sfx                the step's scalars in T (a struct)
 *   em_optim_scalars_sfx(c, k)  fills k from lib/gpu.h's em_update_coeffs
 *   em_optim_<rule>_sfx(...)    one element's update: the variable and the
 *                               slots by pointer, in place; the gradient by
 *                               value (it may be the variable itself)
 * CUDA's C++ gets the same functions without the suffix, overloaded on T,
 * and em_optim_scalars_of<T>::type names the struct.
 *
 * Exactness: the CPU and GPU results agree bit for bit. Each product goes
 * through em_mul_rn, which rounds it before any sum it feeds (the C build,
 * ISO C, never contracts a*b+c into an FMA; nvcc does unless told not to),
 * and each rule keeps the operations and order of TensorFlow's kernels; the
 * square roots are the correctly rounded sqrtf/sqrt on both sides. */
#ifndef EMBER_OPTIM_MATH_H
#define EMBER_OPTIM_MATH_H

#include <stdbool.h>

#include "em_hd.h"
#include "fast_math.h"
#include "gpu.h"


#ifdef __cplusplus
#define EM_OPTIM_FN(name, sfx) em_optim_##name
#else
#define EM_OPTIM_FN(name, sfx) em_optim_##name##_##sfx
#endif

#define EM_OPTIM_STAMP(T, sfx)                                                                                         \
    /* The step's scalars converted to T once (as the kernels compute in T).                                           \
     * Momentum: var -= g * ga + accum * aa, with ga = lr, aa = momentum * lr                                          \
     * for nesterov, else ga = 0, aa = lr. */                                                                          \
    typedef struct em_optim_##sfx {                                                                                    \
        T lr, mu, ga, aa, rho1, eps, b1c, b2c, l1t, l2tlr, keep;                                                       \
    } em_optim_##sfx;                                                                                                  \
    EM_HD static inline void EM_OPTIM_FN(scalars, sfx)(const em_update_coeffs *c, em_optim_##sfx *k) {                 \
        k->lr = (T)c->lr;                                                                                              \
        k->mu = (T)c->momentum;                                                                                        \
        k->ga = c->nesterov ? k->lr : (T)0;                                                                            \
        k->aa = c->nesterov ? k->mu * k->lr : k->lr;                                                                   \
        k->rho1 = (T)c->rho1;                                                                                          \
        k->eps = (T)c->epsilon;                                                                                        \
        k->b1c = (T)c->beta1c;                                                                                         \
        k->b2c = (T)c->beta2c;                                                                                         \
        k->l1t = (T)c->l1t;                                                                                            \
        k->l2tlr = (T)c->l2tlr;                                                                                        \
        k->keep = (T)c->keep;                                                                                          \
    }                                                                                                                  \
    /* GradientDescent: var -= lr * g */                                                                               \
    EM_HD static inline void EM_OPTIM_FN(sgd, sfx)(T *w, T g, em_optim_##sfx k) {                                      \
        *w = *w - em_mul_rn_##sfx(k.lr, g);                                                                         \
    }                                                                                                                  \
    /* Momentum: accum = accum * momentum + g; var -= g * ga + accum * aa */                                           \
    EM_HD static inline void EM_OPTIM_FN(momentum, sfx)(T *w, T *accum, T g, em_optim_##sfx k) {                       \
        T a = em_mul_rn_##sfx(*accum, k.mu) + g;                                                                    \
        *accum = a;                                                                                                    \
        *w = *w - (em_mul_rn_##sfx(g, k.ga) + em_mul_rn_##sfx(a, k.aa));                                         \
    }                                                                                                                  \
    /* Adagrad: accum += g^2; var -= lr * g / sqrt(accum) */                                                           \
    EM_HD static inline void EM_OPTIM_FN(adagrad, sfx)(T *w, T *accum, T g, em_optim_##sfx k) {                        \
        T a = *accum + em_mul_rn_##sfx(g, g);                                                                       \
        *accum = a;                                                                                                    \
        *w = *w - em_mul_rn_##sfx(k.lr, g) / em_math_sqrt(a);                                                       \
    }                                                                                                                  \
    /* AdagradDA: gsum += g; g2sum += g^2;                                                                             \
     * var = -lr * sign(gsum) * max(|gsum| - l1t, 0) / (l2tlr + sqrt(g2sum))                                           \
     * (l1 = 0 leaves the sum as is: shrinking by 0 keeps |sum| and its sign) */                                       \
    EM_HD static inline void EM_OPTIM_FN(adagrad_da, sfx)(T *w, T *gsum, T *g2sum, T g, em_optim_##sfx k) {            \
        T s = *gsum + g, s2 = *g2sum + em_mul_rn_##sfx(g, g);                                                       \
        *gsum = s;                                                                                                     \
        *g2sum = s2;                                                                                                   \
        T mag = (s < 0 ? -s : s) - k.l1t;                                                                              \
        mag = mag > 0 ? mag : 0;                                                                                       \
        *w = em_mul_rn_##sfx(-k.lr, s < 0 ? -mag : mag) / (k.l2tlr + em_math_sqrt(s2));                             \
    }                                                                                                                  \
    /* RMSProp: ms += (g^2 - ms) * rho1; centered: mg += (g - mg) * rho1,                                              \
     * d = ms - mg^2, else d = ms; mom = mom * momentum + lr * g / sqrt(d + eps);                                      \
     * var -= mom. mg is read only when centered. */                                                                   \
    EM_HD static inline void EM_OPTIM_FN(rmsprop, sfx)(T *w, T *ms, T *mom, T *mg, T g, em_optim_##sfx k,              \
                                                       bool centered) {                                                \
        T s = *ms + em_mul_rn_##sfx(em_mul_rn_##sfx(g, g) - *ms, k.rho1), d = s;                                 \
        *ms = s;                                                                                                       \
        if (centered) {                                                                                                \
            T m = *mg + em_mul_rn_##sfx(g - *mg, k.rho1);                                                           \
            *mg = m;                                                                                                   \
            d = s - em_mul_rn_##sfx(m, m);                                                                          \
        }                                                                                                              \
        T mo = em_mul_rn_##sfx(*mom, k.mu) + em_mul_rn_##sfx(k.lr, g) / em_math_sqrt(d + k.eps);                 \
        *mom = mo;                                                                                                     \
        *w = *w - mo;                                                                                                  \
    }                                                                                                                  \
    /* Adam (lr already bias-corrected by the host): m += (g - m) * b1c;                                               \
     * v += (g^2 - v) * b2c; var = var * keep - lr * m / (sqrt(v) + eps)                                               \
     * (keep = 1 - lr * weight_decay: AdamW; 1 for Adam) */                                                            \
    EM_HD static inline void EM_OPTIM_FN(adam, sfx)(T *w, T *m, T *v, T g, em_optim_##sfx k) {                         \
        T m1 = *m + em_mul_rn_##sfx(g - *m, k.b1c);                                                                 \
        T v1 = *v + em_mul_rn_##sfx(em_mul_rn_##sfx(g, g) - *v, k.b2c);                                          \
        *m = m1;                                                                                                       \
        *v = v1;                                                                                                       \
        *w = em_mul_rn_##sfx(*w, k.keep) - em_mul_rn_##sfx(k.lr, m1) / (em_math_sqrt(v1) + k.eps);               \
    }

EM_OPTIM_STAMP(float, f32)
EM_OPTIM_STAMP(double, f64)

#ifdef __cplusplus
template <class T> struct em_optim_scalars_of;
template <> struct em_optim_scalars_of<float> { typedef em_optim_f32 type; };
template <> struct em_optim_scalars_of<double> { typedef em_optim_f64 type; };
#endif

#endif
