/* moments' cases (lib/ops/moments.c): gradient checks of both results (test/test_gradcheck.c) and forward
 * cases (test/test_ops.c). Expected values come from ref_moments, which recomputes the mean and then the
 * mean squared deviation (two passes, float64) from the case's input values. */
#include "common.h"

#include <stdlib.h>

/* The op's packed [2, kept dims] output, the reduced axes given as a bitmask. */
static em_tensor *packed(em_tensor *x, int64_t mask) {
    return em__apply(EM_OP_MOMENTS, 1, &x, &(em_attrs){.i = {mask}, .ni = 1});
}
/* One of em_moments' results: the mean (which 0) or the variance (1). */
static em_tensor *result(em_tensor *x, int naxes, const int *axes, bool keepdims, int which) {
    em_tensor *m[2];
    return em_moments(x, naxes, axes, keepdims, &m[0], &m[1]) ? NULL : m[which];
}

/* ---- gradient cases ---- */

static em_tensor *var_plus_3mean_02(em_tensor *const *in) {
    em_tensor *m, *v;
    return em_moments(in[0], EM_AXES(0, 2), false, &m, &v) ? NULL : em_add(v, em_mul_scalar(m, 3));
}
static em_tensor *var_last_keep(em_tensor *const *in) { return result(in[0], EM_AXES(-1), true, 1); }
static em_tensor *mean_all(em_tensor *const *in) { return result(in[0], EM_ALL_AXES, false, 0); }
static em_tensor *mean_times_var_01_keep(em_tensor *const *in) {
    em_tensor *m, *v;
    return em_moments(in[0], EM_AXES(0, -2), true, &m, &v) ? NULL : em_mul(m, v);
}

const gc_case gc_cases_moments[] = {
    {EM_OP_MOMENTS, "moments axes (0,2) [2,3,4]: variance + 3 mean", 1, {EM_SHAPE(2, 3, 4)}, var_plus_3mean_02, -1, 1, 0,
     NULL},
    {EM_OP_MOMENTS, "moments axis -1 keepdims [3,5]: variance", 1, {EM_SHAPE(3, 5)}, var_last_keep, -2, 2, 0, NULL},
    {EM_OP_MOMENTS, "moments all [2,3]: mean", 1, {EM_SHAPE(2, 3)}, mean_all, -1, 1, 0, NULL},
    {EM_OP_MOMENTS, "moments axes (0,-2) keepdims [4,3,2]: mean variance", 1, {EM_SHAPE(4, 3, 2)},
     mean_times_var_01_keep, 0.5, 2, 0, NULL},
    {.fn = NULL},
};

/* ---- forward cases ---- */

/* The reduced axes of each case, as the op's bitmask (its fn and ref agree through it). */
enum { AX_02 = 5, AX_0 = 1, AX_1 = 2, AX_LAST3 = 4, AX_01 = 3, AX_ALL3 = 7 };

static em_tensor *f_packed_02(em_tensor *const *in) { return packed(in[0], AX_02); }
static em_tensor *f_packed_0(em_tensor *const *in) { return packed(in[0], AX_0); }
static em_tensor *f_packed_1(em_tensor *const *in) { return packed(in[0], AX_1); }
static em_tensor *f_mean_neg_keep(em_tensor *const *in) { return result(in[0], EM_AXES(-1), true, 0); }
static em_tensor *f_var_01(em_tensor *const *in) { return result(in[0], EM_AXES(0, 1), false, 1); }
static em_tensor *f_var_all(em_tensor *const *in) { return result(in[0], EM_ALL_AXES, false, 1); }
/* the variance over axis 0 of a transposed (strided) view: the rows of the original */
static em_tensor *f_var_t_0(em_tensor *const *in) { return result(em_transpose(in[0], EM_ALL_AXES), EM_AXES(0), false, 1); }

/* Two-pass float64 moments of input 0 over the axes in `mask`; `part` selects what the case's fn returns
 * (the packed pair, the means or the variances) in the kept axes' row-major order. */
enum { BOTH, MEANS, VARS };
static void ref_moments(const fw_case *c, double *e, uint64_t mask, int part) {
    const fw_input *x = &c->in[0];
    int nd = x->shape.ndim;
    int64_t n = em_shape_numel(x->shape), nout = 1, count = 1;
    for (int d = 0; d < nd; d++) {
        if (mask >> d & 1u) count *= x->shape.dims[d];
        else nout *= x->shape.dims[d];
    }
    double *sum = calloc((size_t)nout + 1, sizeof(double)), *sq = calloc((size_t)nout + 1, sizeof(double));
    int64_t *out_of = malloc(sizeof(int64_t) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) { /* the output element i belongs to: its kept coordinates, row-major */
        int64_t rest = i, o = 0, scale = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t coord = rest % x->shape.dims[d];
            rest /= x->shape.dims[d];
            if (!(mask >> d & 1u)) o += coord * scale, scale *= x->shape.dims[d];
        }
        out_of[i] = o;
        sum[o] += fw_held(x, i);
    }
    for (int64_t i = 0; i < n; i++) {
        double dev = fw_held(x, i) - sum[out_of[i]] / (double)count;
        sq[out_of[i]] += dev * dev;
    }
    for (int64_t o = 0; o < nout; o++) {
        double mean = sum[o] / (double)count, var = sq[o] / (double)count;
        if (part == BOTH) e[o] = mean, e[nout + o] = var;
        else e[o] = part == MEANS ? mean : var;
    }
    free(sum);
    free(sq);
    free(out_of);
}
static void ref_packed_02(const fw_case *c, double *e) { ref_moments(c, e, AX_02, BOTH); }
static void ref_packed_0(const fw_case *c, double *e) { ref_moments(c, e, AX_0, BOTH); }
static void ref_packed_1(const fw_case *c, double *e) { ref_moments(c, e, AX_1, BOTH); }
static void ref_mean_last3(const fw_case *c, double *e) { ref_moments(c, e, AX_LAST3, MEANS); }
static void ref_var_01(const fw_case *c, double *e) { ref_moments(c, e, AX_01, VARS); }
static void ref_var_all3(const fw_case *c, double *e) { ref_moments(c, e, AX_ALL3, VARS); }
static void ref_var_1(const fw_case *c, double *e) { ref_moments(c, e, AX_1, VARS); }

/* LONG(b) = 37 b mod 101, -50 .. 50: rows long enough for the interleaved partial sums, and columns
 * wider than the kernel's blocks of 256; exact in float32. */
#define LONG(b) ((double)((b) * 37 % 101) - 50)
#define G4(F, b) F(b), F((b) + 1), F((b) + 2), F((b) + 3)
#define G16(F, b) G4(F, b), G4(F, (b) + 4), G4(F, (b) + 8), G4(F, (b) + 12)
#define G64(F, b) G16(F, b), G16(F, (b) + 16), G16(F, (b) + 32), G16(F, (b) + 48)
#define G256(F, b) G64(F, b), G64(F, (b) + 64), G64(F, (b) + 128), G64(F, (b) + 192)
#define X768 V(G256(LONG, 0), G256(LONG, 256), G256(LONG, 512))
#define X24 V(3, -1, 4, 1, -5, 9, 2, -6, 5, 3, -5, 8, 9, -7, 9, 3, 2, -3, 8, 4, -6, 2, 6, 4)

#define TOL(dt) ((dt) == EM_F32 ? 1e-6 : 1e-12)
#define M1(dt, label, fn, ishape, ivals, oshape, ref) \
    {"moments", dt, label " " #dt, fn, 1, {{dt, ishape, ivals}}, dt, oshape, NULL, ref, TOL(dt)}
#define CASES(dt)                                                                                                      \
    M1(dt, "moments axes (0,2) [2,3,4], packed", f_packed_02, EM_SHAPE(2, 3, 4), X24, EM_SHAPE(2, 3), ref_packed_02),  \
        M1(dt, "moments axis -1 keepdims [2,3,4]: mean", f_mean_neg_keep, EM_SHAPE(2, 3, 4), X24, EM_SHAPE(2, 3, 1),   \
           ref_mean_last3),                                                                                            \
        M1(dt, "moments axes (0,1) [2,3,4]: variance", f_var_01, EM_SHAPE(2, 3, 4), X24, EM_SHAPE(4), ref_var_01),     \
        M1(dt, "moments all [2,3,4]: variance", f_var_all, EM_SHAPE(2, 3, 4), X24, EM_SHAPE0, ref_var_all3),           \
        M1(dt, "moments axis 0 of a transposed view [4,6]^T: variance", f_var_t_0, EM_SHAPE(4, 6), X24, EM_SHAPE(4),    \
           ref_var_1),                                                                                                 \
        M1(dt, "moments axis 1 of long rows [2,384], packed", f_packed_1, EM_SHAPE(2, 384), X768, EM_SHAPE(2, 2),      \
           ref_packed_1),                                                                                              \
        M1(dt, "moments axis 0 of wide columns [2,384], packed", f_packed_0, EM_SHAPE(2, 384), X768,                   \
           EM_SHAPE(2, 384), ref_packed_0),                                                                            \
        M1(dt, "moments axis 1 with NaN and Inf [3,3], packed", f_packed_1, EM_SHAPE(3, 3),                            \
           V(1, NAN, 2, INFINITY, 1, 2, -INFINITY, INFINITY, 0), EM_SHAPE(2, 3), ref_packed_1),                        \
        M1(dt, "moments axis 1 of empty [2,0]: NaN, as em_mean", f_packed_1, EM_SHAPE(2, 0), V(0), EM_SHAPE(2, 2),     \
           ref_packed_1)

const fw_case fw_cases_moments[] = {
    CASES(EM_F32),
    CASES(EM_F64),
    {.fn = NULL},
};
