/* The attention family's cases (ops/attention.c): gradient checks on small
 * shapes (run by test_gradcheck.c) and forward cases (run by test_ops.c on
 * every device). Expected values come from attention_reference below: the
 * textbook formulas as plain float64 loops over the whole [Tq, Tk] scores,
 * independent of the kernels' blocks and online softmax (test_attention.c
 * uses it too, at sizes that span several blocks). */
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* s = scale q.k + mask, -inf where causal cuts; p = softmax(s) over each row
 * (a row of -inf gives p = 0); o = p v. With dout: dv = p^T do,
 * dp = do v^T, ds = p (dp - sum_j p dp), dq = scale ds k, dk = scale ds^T q.
 * mask4 is the mask's shape right-aligned to 4 dims (1 where it broadcasts). */
void attention_reference(int64_t B, int64_t H, int64_t tq, int64_t tk, int64_t d, const double *q, const double *k,
                         const double *v, const double *mask, const int64_t *mask4, bool causal, double scale,
                         const double *dout, double *o, double *dq, double *dk, double *dv) {
    double *p = malloc(sizeof(double) * (size_t)(tq * tk + 1)), *dp = malloc(sizeof(double) * (size_t)(tq * tk + 1));
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(dp);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            int64_t base_q = (b * H + h) * tq * d, base_k = (b * H + h) * tk * d;
            for (int64_t i = 0; i < tq; i++) {
                double m = -INFINITY, sum = 0;
                for (int64_t j = 0; j < tk; j++) {
                    double s = -INFINITY;
                    if (!causal || j <= i + tk - tq) {
                        s = 0;
                        for (int64_t t = 0; t < d; t++) s += q[base_q + i * d + t] * k[base_k + j * d + t];
                        s *= scale;
                        if (mask)
                            s += mask[(((b % mask4[0]) * mask4[1] + h % mask4[1]) * mask4[2] + i % mask4[2]) * mask4[3] +
                                      j % mask4[3]];
                    }
                    p[i * tk + j] = s;
                    m = fmax(m, s);
                }
                for (int64_t j = 0; j < tk; j++) {
                    p[i * tk + j] = m == -INFINITY ? 0 : exp(p[i * tk + j] - m);
                    sum += p[i * tk + j];
                }
                for (int64_t j = 0; j < tk; j++) p[i * tk + j] = sum > 0 ? p[i * tk + j] / sum : 0;
                for (int64_t t = 0; t < d; t++) {
                    double acc = 0;
                    for (int64_t j = 0; j < tk; j++) acc += p[i * tk + j] * v[base_k + j * d + t];
                    if (o) o[base_q + i * d + t] = acc;
                }
            }
            if (!dout) continue;
            for (int64_t i = 0; i < tq; i++) {
                double rowdot = 0;
                for (int64_t j = 0; j < tk; j++) {
                    double s = 0;
                    for (int64_t t = 0; t < d; t++) s += dout[base_q + i * d + t] * v[base_k + j * d + t];
                    dp[i * tk + j] = s;
                    rowdot += p[i * tk + j] * s;
                }
                for (int64_t j = 0; j < tk; j++) dp[i * tk + j] = p[i * tk + j] * (dp[i * tk + j] - rowdot);
            }
            for (int64_t i = 0; i < tq; i++)
                for (int64_t t = 0; t < d; t++) {
                    double acc = 0;
                    for (int64_t j = 0; j < tk; j++) acc += dp[i * tk + j] * k[base_k + j * d + t];
                    dq[base_q + i * d + t] = scale * acc;
                }
            for (int64_t j = 0; j < tk; j++)
                for (int64_t t = 0; t < d; t++) {
                    double ak = 0, av = 0;
                    for (int64_t i = 0; i < tq; i++) {
                        ak += dp[i * tk + j] * q[base_q + i * d + t];
                        av += p[i * tk + j] * dout[base_q + i * d + t];
                    }
                    dk[base_k + j * d + t] = scale * ak;
                    dv[base_k + j * d + t] = av;
                }
        }
    free(p);
    free(dp);
}

/* attention(q, k, v [, mask]) from the public function. */
static em_tensor *attention_(em_tensor *const *in, int nin, bool causal, double scale) {
    return em_scaled_dot_product_attention(in[0], in[1], in[2], causal, scale, nin == 4 ? in[3] : NULL);
}
/* The gradients dq, dk, dv (flattened, one after the other) through the tape, with q itself as the incoming gradient. */
static em_tensor *attention_grads_(em_tensor *const *in, int nin, bool causal, double scale) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = attention_(in, nin, causal, scale), *g[3] = {NULL, NULL, NULL};
    int rc = y ? em_gradients_with(tape, y, in[0], 3, in, g) : -1;
    em_tape_release(tape);
    if (rc) return NULL;
    em_tensor *flat[3];
    for (int i = 0; i < 3; i++) flat[i] = em_reshape(g[i], EM_SHAPE(-1));
    return em_concat(3, flat, 0);
}

/* The reference of case c (inputs q, k, v [, mask]): o, or with grads dq | dk | dv for do = q. */
static void attention_ref_(const fw_case *c, double *e, bool causal, double scale, bool grads) {
    const em_shape qs = c->in[0].shape, ks = c->in[1].shape;
    int64_t B = qs.dims[0], H = qs.dims[1], tq = qs.dims[2], tk = ks.dims[2], d = qs.dims[3];
    double *q = fw_load(c, 0, qs), *k = fw_load(c, 1, ks), *v = fw_load(c, 2, ks), *mask = NULL;
    int64_t mask4[4] = {1, 1, 1, 1};
    if (c->nin == 4) {
        mask = fw_load(c, 3, c->in[3].shape);
        for (int i = 0; i < c->in[3].shape.ndim; i++) mask4[4 - c->in[3].shape.ndim + i] = c->in[3].shape.dims[i];
    }
    if (scale == 0) scale = 1 / sqrt((double)d);
    int64_t nq = B * H * tq * d, nk = B * H * tk * d;
    if (grads)
        attention_reference(B, H, tq, tk, d, q, k, v, mask, mask4, causal, scale, q, NULL, e, e + nq, e + nq + nk);
    else
        attention_reference(B, H, tq, tk, d, q, k, v, mask, mask4, causal, scale, NULL, e, NULL, NULL, NULL);
    free(q);
    free(k);
    free(v);
    free(mask);
}

#define ATTN_CASE(NAME, NIN, CAUSAL, SCALE)                                                                            \
    static em_tensor *f_##NAME(em_tensor *const *in) { return attention_(in, NIN, CAUSAL, SCALE); }                  \
    static void NAME##_ref(const fw_case *c, double *e) { attention_ref_(c, e, CAUSAL, SCALE, false); }               \
    static em_tensor *f_##NAME##_grads(em_tensor *const *in) { return attention_grads_(in, NIN, CAUSAL, SCALE); }    \
    static void NAME##_grads_ref(const fw_case *c, double *e) { attention_ref_(c, e, CAUSAL, SCALE, true); }
ATTN_CASE(plain, 3, false, 0)
ATTN_CASE(causal, 3, true, 0.7)
ATTN_CASE(causal_square, 3, true, 0)
ATTN_CASE(masked, 4, false, 1.5)
ATTN_CASE(masked_causal, 4, true, 0)
ATTN_CASE(wide_causal, 3, true, 0)

/* random.Random(3): uniform(-1, 1) rounded to 2 decimals */
static const double W[160] = {
    -0.52, 0.09,  -0.26, 0.21,  0.25,  -0.87, -0.97, 0.67,  -0.48, -0.53, 0.99,  -0.06, 0.67,  -0.05, 0.28,  -0.7,
    0.27,  0.74,  0.05,  0.48,  0.34,  -0.87, 0.52,  0.18,  -0.4,  -0.94, 0.73,  -0.05, 0.44,  0.76,  0.43,  0.84,
    -0.21, 0.6,   -0.11, 0.87,  0.76,  -0.81, -0.73, -0.57, 0.93,  -0.13, 0.25,  -0.4,  0.01,  -0.23, -0.3,  0.17,
    0.17,  0.81,  0.36,  0.86,  0.71,  0.98,  0.34,  -0.67, 0.72,  0.93,  0.81,  0.14,  0.43,  -0.58, 0.66,  0.15,
    -0.43, -0.87, 0.71,  0.98,  -0.82, 0.6,   -0.18, -0.7,  -0.41, 0.54,  0.75,  -0.91, 0.23,  -0.91, 0.44,  -0.34,
    0.76,  0.96,  0.01,  1.0,   -0.38, -0.85, 0.2,   -0.94, -0.61, -0.18, 0.22,  -0.69, -0.92, 0.74,  -0.37, 0.92,
    0.79,  -0.24, -0.08, 0.04,  0.29,  0.19,  0.12,  0.24,  0.88,  0.01,  -0.14, 0.44,  -0.52, -0.4,  0.96,  0.04,
    0.1,   -0.98, -0.17, 0.16,  -0.96, 0.23,  0.26,  -0.88, 0.25,  -0.07, 0.36,  -0.29, 0.41,  0.48,  -0.96, -0.88,
    0.35,  0.93,  -0.5,  -0.09, 0.19,  -0.36, -0.27, -0.37, -0.26, 0.19,  -0.4,  -0.25, 0.54,  -0.95, 0.14,  0.47,
    -0.38, -0.55, 0.61,  -0.52, -0.63, -0.13, 0.4,   -0.8,  -0.36, -0.33, 0.67,  -0.12, 0.71,  -0.66, -0.33, 0.3,
};
/* an additive mask [3, 5]: -inf hides a key; row 2 sees only key 4 (and under causal with Tq 3, Tk 5, it may) */
static const double MASK35[15] = {0, -1, -INFINITY, 0.5, 0, -INFINITY, 0, 0, -2, 0.25,
                                  -INFINITY, -INFINITY, -INFINITY, -INFINITY, 0.75};
/* a per-head key mask [1, 2, 1, 5] */
static const double MASK_HEADS[10] = {0, -INFINITY, 0, 0.5, -1, -0.5, 0, -INFINITY, 0, 0};

#define IN(DT, S, X) {DT, S, X}
/* q [1,2,3,4]; k, v [1,2,5,4]: Tq < Tk */
#define QKV_SMALL(DT) IN(DT, EM_SHAPE(1, 2, 3, 4), W), IN(DT, EM_SHAPE(1, 2, 5, 4), W + 24), IN(DT, EM_SHAPE(1, 2, 5, 4), W + 64)
/* q, k, v [2,1,4,4]: Tq = Tk */
#define QKV_SQUARE(DT) IN(DT, EM_SHAPE(2, 1, 4, 4), W), IN(DT, EM_SHAPE(2, 1, 4, 4), W + 32), IN(DT, EM_SHAPE(2, 1, 4, 4), W + 64)
/* q [1,1,2,16]; k, v [1,1,3,16]: rows of 16, as the vector kernels take them */
#define QKV_WIDE(DT) IN(DT, EM_SHAPE(1, 1, 2, 16), W), IN(DT, EM_SHAPE(1, 1, 3, 16), W + 32), IN(DT, EM_SHAPE(1, 1, 3, 16), W + 80)
/* float32 to 1e-5 (a sum of exps and a division per row), float64 to 1e-12 */
#define ATT(DT, OPN, NAME, OS, NIN, ...)                                                                               \
    {OPN, DT, OPN " " #NAME " " #DT, f_##NAME, NIN, {__VA_ARGS__}, DT, OS, NULL, NAME##_ref, DT == EM_F32 ? 1e-5 : 1e-12}
#define FWD_CASES(DT)                                                                                                  \
    ATT(DT, "attention", plain, EM_SHAPE(1, 2, 3, 4), 3, QKV_SMALL(DT)),                                              \
    ATT(DT, "attention", causal, EM_SHAPE(1, 2, 3, 4), 3, QKV_SMALL(DT)),                                             \
    ATT(DT, "attention", causal_square, EM_SHAPE(2, 1, 4, 4), 3, QKV_SQUARE(DT)),                                     \
    ATT(DT, "attention", masked, EM_SHAPE(1, 2, 3, 4), 4, QKV_SMALL(DT), IN(DT, EM_SHAPE(3, 5), MASK35)),             \
    ATT(DT, "attention", masked_causal, EM_SHAPE(1, 2, 3, 4), 4, QKV_SMALL(DT), IN(DT, EM_SHAPE(1, 2, 1, 5), MASK_HEADS)), \
    ATT(DT, "attention", wide_causal, EM_SHAPE(1, 1, 2, 16), 3, QKV_WIDE(DT)),                                        \
    ATT(DT, "attention_grad", plain_grads, EM_SHAPE(104), 3, QKV_SMALL(DT)),                                          \
    ATT(DT, "attention_grad", causal_grads, EM_SHAPE(104), 3, QKV_SMALL(DT)),                                         \
    ATT(DT, "attention_grad", masked_grads, EM_SHAPE(104), 4, QKV_SMALL(DT), IN(DT, EM_SHAPE(3, 5), MASK35)),         \
    ATT(DT, "attention_grad", masked_causal_grads, EM_SHAPE(104), 4, QKV_SMALL(DT), IN(DT, EM_SHAPE(1, 2, 1, 5), MASK_HEADS)), \
    ATT(DT, "attention_grad", causal_square_grads, EM_SHAPE(96), 3, QKV_SQUARE(DT)),                                  \
    ATT(DT, "attention_grad", wide_causal_grads, EM_SHAPE(128), 3, QKV_WIDE(DT))

const fw_case fw_cases_attention[] = {
    FWD_CASES(EM_F32),
    FWD_CASES(EM_F64),
    {.fn = NULL},
};

/* ---- gradient checks (float64, inputs uniform in [-1, 1); the mask, input 3, is not differentiated) ---- */
static em_tensor *gc_plain(em_tensor *const *in) { return attention_(in, 3, false, 0); }
static em_tensor *gc_causal(em_tensor *const *in) { return attention_(in, 3, true, 0.8); }
static em_tensor *gc_masked(em_tensor *const *in) { return attention_(in, 4, false, 0); }
static em_tensor *gc_masked_causal(em_tensor *const *in) { return attention_(in, 4, true, 0); }
/* The op's whole packed output, O and the rows' lse: the lse's gradient too. */
static em_tensor *gc_packed(em_tensor *const *in) {
    return em__apply(EM_OP_ATTENTION, 3, in, &(em_attrs){.i = {1}, .ni = 1, .f = {0.9}});
}

const gc_case gc_cases_attention[] = {
    {EM_OP_ATTENTION, "attention [1,2,3,4] x [1,2,5,4]", 3, {EM_SHAPE(1, 2, 3, 4), EM_SHAPE(1, 2, 5, 4), EM_SHAPE(1, 2, 5, 4)},
     gc_plain, -1, 1, 0, NULL},
    {EM_OP_ATTENTION, "attention causal [2,1,3,4] x [2,1,5,4]", 3,
     {EM_SHAPE(2, 1, 3, 4), EM_SHAPE(2, 1, 5, 4), EM_SHAPE(2, 1, 5, 4)}, gc_causal, -1, 1, 0, NULL},
    {EM_OP_ATTENTION, "attention mask [3,5]", 4,
     {EM_SHAPE(1, 2, 3, 4), EM_SHAPE(1, 2, 5, 4), EM_SHAPE(1, 2, 5, 4), EM_SHAPE(3, 5)}, gc_masked, -1, 1, 1u << 3, NULL},
    {EM_OP_ATTENTION, "attention causal, mask [2,1,4]", 4,
     {EM_SHAPE(1, 2, 4, 3), EM_SHAPE(1, 2, 4, 3), EM_SHAPE(1, 2, 4, 3), EM_SHAPE(2, 1, 4)}, gc_masked_causal, -1, 1,
     1u << 3, NULL},
    {EM_OP_ATTENTION, "attention packed [O | lse], causal", 3,
     {EM_SHAPE(1, 2, 3, 4), EM_SHAPE(1, 2, 5, 4), EM_SHAPE(1, 2, 5, 4)}, gc_packed, -1, 1, 0, NULL},
    {.fn = NULL},
};
