/* Batch norm's formulas, written once for the C kernels (lib/ops/batch_norm.c) and the CUDA ones
 * (gpu/batch_norm.cu). Per channel, over the R rows of x [R, C] (sums in double):
 *   forward:   mean = s(x) / R, var = s((x - mean)^2) / R, rstd = 1 / sqrt(var + eps),
 *              y = (x - mean) rstd scale + offset
 *   backward:  xh = (x - mean) rstd, dscale = s(dy xh), doffset = s(dy),
 *              dx = scale rstd (dy - doffset / R - xh dscale / R) */
#ifndef EMBER_BATCH_NORM_MATH_H
#define EMBER_BATCH_NORM_MATH_H

#include "../em_hd.h"

#include <math.h>

EM_HD static inline double em_bn_rstd(double var, double eps) { return 1.0 / sqrt(var + eps); }
EM_HD static inline double em_bn_y(double x, double mean, double rstd, double scale, double offset) {
    return (x - mean) * rstd * scale + offset;
}
EM_HD static inline double em_bn_dx(double x, double dy, double mean, double rstd, double scale, double dscale,
                                    double doffset, double inv_rows) {
    double xh = (x - mean) * rstd;
    return scale * rstd * (dy - doffset * inv_rows - xh * dscale * inv_rows);
}

#endif
