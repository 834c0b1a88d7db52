/* moments' formulas, written once for the C kernel (lib/ops/moments.c) and the CUDA one (gpu/moments.cu).
 *
 * One pass with shifted sums in double: each output's elements x_i (n of them) are read once, as
 * d_i = x_i - K with K the output's first element, into S1 = s(d) and S2 = s(d^2); then
 *   mean = K + S1 / n,   variance = (S2 - S1^2 / n) / n.
 * Why shifted sums rather than Welford or Chan updates: they need no division per element, so the
 * loop is a subtract, an add and a multiply-add in double lanes and vectorizes; and the shift removes
 * the cancellation of the textbook E[x^2] - E[x]^2. K is one of the data, so |mean - K| <= sqrt(n) sd,
 * and the subtraction loses at most a factor (mean - K)^2 / var <= n of the double's 2^-53: for float32
 * inputs that is below float32's rounding up to n = 2^29, and for the usual data (K within a few sd of
 * the mean, as 1e4 + N(0, 1)) it is a few units of the double's last place. A non-finite first element
 * shifts by 0 instead, so Inf and NaN propagate as in the two-pass formula (mean Inf, variance NaN).
 * A reduction over no elements gives NaN for both, as em_mean's 0 / 0. Rounding can leave the variance
 * a hair below 0 for constant data: it is clamped to 0 (a NaN stays NaN). */
#ifndef EMBER_MOMENTS_MATH_H
#define EMBER_MOMENTS_MATH_H

#include "../em_hd.h"

#include <math.h>

EM_HD static inline double em_moments_shift(double first) { return isfinite(first) ? first : 0.0; }
EM_HD static inline double em_moments_mean(double shift, double s1, double n) { return shift + s1 / n; }
EM_HD static inline double em_moments_variance(double s1, double s2, double n) {
    double v = (s2 - em_mul_rn_f64(s1, s1) / n) / n;
    return v < 0 ? 0.0 : v;
}

#endif
