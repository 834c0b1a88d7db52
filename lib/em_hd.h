/* EM_HD marks a function compiled for both the host and a CUDA device: the
 * formulas and index math that lib/ and gpu/ share. */
#ifndef EMBER_EM_HD_H
#define EMBER_EM_HD_H

#ifdef __CUDACC__
#define EM_HD __host__ __device__
#else
#define EM_HD
#endif

/* a * b rounded to its type before any sum it feeds: the C build (ISO C, no
 * contraction) never fuses it into an FMA, and CUDA code must not either, so
 * that the two agree bit for bit. C names carry the type; C++ overloads em_mul_rn. */
EM_HD static inline float em_mul_rn_f32(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
EM_HD static inline double em_mul_rn_f64(double a, double b) {
#ifdef __CUDA_ARCH__
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}
#ifdef __cplusplus
EM_HD static inline float em_mul_rn(float a, float b) { return em_mul_rn_f32(a, b); }
EM_HD static inline double em_mul_rn(double a, double b) { return em_mul_rn_f64(a, b); }
#endif

/* Silences unused-typedef and unused-variable warnings in stamped code. */
#define EM_UNUSED __attribute__((unused))

#endif
