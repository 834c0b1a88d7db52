/* The formulas of examples/custom_op.c's fused bias + GELU, shared by its C
 * kernels and its CUDA kernels (examples/custom_op_cuda.cu): written once.
 * GELU is the exact (erf) form, as em_gelu. */
#ifndef EMBER_EXAMPLES_BIAS_GELU_H
#define EMBER_EXAMPLES_BIAS_GELU_H

#include <math.h>

#ifdef __CUDACC__
#define BIAS_GELU_HD __host__ __device__
#else
#define BIAS_GELU_HD
#endif

/* gelu(z) = z Phi(z), Phi the standard normal CDF. */
BIAS_GELU_HD static inline double bias_gelu_value(double z) { return 0.5 * z * (1 + erf(z * 0.70710678118654752)); }
/* gelu'(z) = Phi(z) + z phi(z). */
BIAS_GELU_HD static inline double bias_gelu_slope(double z) {
    return 0.5 * (1 + erf(z * 0.70710678118654752)) + z * 0.39894228040143268 * exp(-0.5 * z * z);
}
BIAS_GELU_HD static inline float bias_gelu_value_f(float z) { return 0.5f * z * (1 + erff(z * 0.70710678f)); }
BIAS_GELU_HD static inline float bias_gelu_slope_f(float z) {
    return 0.5f * (1 + erff(z * 0.70710678f)) + z * 0.39894228f * expf(-0.5f * z * z);
}

#endif
