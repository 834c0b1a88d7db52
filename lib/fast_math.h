/* float32 math that vectorizes, shared by the elementwise kernels and the
 * softmax family: header-only, static inline. */
#ifndef EMBER_FAST_MATH_H
#define EMBER_FAST_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* float32 exp and tanh as branch-free polynomials (Cephes' coefficients, range
 * reduction by ln 2 in two parts, the power of two built from its bits in two
 * halves so no step overflows): unlike glibc's expf and tanhf they vectorize.
 * Measured against double-precision libm over every 97th float: exp within
 * 0.99 ulp, tanh within 1.33 ulp. float64 keeps libm. */
static inline float em__bits_to_float(int32_t i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline float em__expf(float x) {
    float c = x > 88.72283f ? 88.72283f : x < -103.97208f ? -103.97208f : x;
    c = c == c ? c : 0.0f; /* NaN: any finite stand-in; the result is replaced below */
    float n = rintf(c * 1.44269504088896341f);
    float r = (c - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t k = (int32_t)n, k1 = k / 2;
    float y = p * em__bits_to_float((k1 + 127) << 23) * em__bits_to_float((k - k1 + 127) << 23);
    y = x > 88.72283f ? INFINITY : x < -103.97208f ? 0.0f : y;
    return x == x ? y : x;
}

static inline float em__tanhf(float x) {
    float a = fabsf(x);
    float z = x * x; /* |x| < 0.625: x + x^3 P(x^2) */
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float e = em__expf(2.0f * (a < 9.0f ? a : 9.0f)); /* beyond 9, tanh is 1 in float */
    float large = 1.0f - 2.0f / (e + 1.0f);
    large = x < 0 ? -large : large;
    return a == 0.0f ? x : a < 0.625f ? small : x == x ? large : x; /* x == 0 keeps its sign */
}

/* One exp of -|x|, so nothing overflows and the select is branch-free. */
static inline float em__sigmoidf(float x) {
    float e = em__expf(-fabsf(x)), s = 1.0f / (1.0f + e);
    return x >= 0 ? s : e * s;
}

/* exp for float (the polynomial above) and double (libm), by the argument's type. */
#define EM_EXP(x) _Generic((x), float: em__expf, default: exp)(x)

#endif
