/* The pool family's cases (ops/pool.c): gradient checks on small shapes
 * (run by test_gradcheck.c) and forward cases (run by test_ops.c on every
 * device). */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static const int S2[] = {2, 2}, K2[] = {2, 2}, K3[] = {3, 3};
static em_tensor *max_pool_same(em_tensor *const *in) { return em_max_pool(in[0], K3, S2, EM_PAD_SAME); }
static em_tensor *max_pool_valid(em_tensor *const *in) { return em_max_pool(in[0], K2, S2, EM_PAD_VALID); }
static em_tensor *max_pool_2x2_same(em_tensor *const *in) { return em_max_pool(in[0], K2, S2, EM_PAD_SAME); }
static em_tensor *avg_pool_same(em_tensor *const *in) { return em_avg_pool(in[0], K3, S2, EM_PAD_SAME); }
static em_tensor *avg_pool_valid(em_tensor *const *in) { return em_avg_pool(in[0], K2, (const int[]){1, 1}, EM_PAD_VALID); }
/* avg_pool_grad of [1,3,3,2] (3x3 SAME stride 2 over [1,5,6,2]). */
static em_tensor *avg_pool_grad(em_tensor *const *in) {
    em_attrs a = {.i = {2, 2, 3, 3, EM_PAD_SAME, 1, 5, 6, 2}, .ni = 9};
    return em__apply(EM_OP_AVG_POOL_GRAD, 1, in, &a);
}

const gc_case gc_cases_pool[] = {
    {EM_OP_MAX_POOL, "max_pool 3x3 SAME stride 2 [1,5,6,2]", 1, {EM_SHAPE(1, 5, 6, 2)}, max_pool_same, -1, 1, 0, NULL},
    {EM_OP_MAX_POOL, "max_pool 2x2 VALID stride 2 [2,4,4,1]", 1, {EM_SHAPE(2, 4, 4, 1)}, max_pool_valid, -1, 1, 0, NULL},
    /* windows that miss the last row and column (their gradient is zero), and
     * windows clipped by SAME padding that still tile the input */
    {EM_OP_MAX_POOL, "max_pool 2x2 VALID stride 2 [1,5,5,3]", 1, {EM_SHAPE(1, 5, 5, 3)}, max_pool_valid, -1, 1, 0, NULL},
    {EM_OP_MAX_POOL, "max_pool 2x2 SAME stride 2 [2,5,3,2]", 1, {EM_SHAPE(2, 5, 3, 2)}, max_pool_2x2_same, -1, 1, 0, NULL},
    {EM_OP_AVG_POOL, "avg_pool 3x3 SAME stride 2 [1,5,6,2]", 1, {EM_SHAPE(1, 5, 6, 2)}, avg_pool_same, -1, 1, 0, NULL},
    {EM_OP_AVG_POOL, "avg_pool 2x2 VALID stride 1 [2,3,4,1]", 1, {EM_SHAPE(2, 3, 4, 1)}, avg_pool_valid, -1, 1, 0, NULL},
    {EM_OP_AVG_POOL_GRAD, "avg_pool_grad [1,3,3,2] -> [1,5,6,2]", 1, {EM_SHAPE(1, 3, 3, 2)}, avg_pool_grad, -1, 1, 0,
     NULL},
    {.fn = NULL},
};

/* ---- forward cases ----
 * Every expected value is computed by a ref below, in float64 from the
 * case's input values as its dtype holds them, by the loops of a direct
 * pooling and TensorFlow's padding rule, independently of the kernels.
 * Inputs are small integers (fw_ints_a, fw_ints_b), so float32 sums are exact and max
 * pooling has ties. */

/* ---- pooling: every window clipped to the input (SAME padding is never
 * pooled: max over, and average of, the window's elements in the input) ---- */

typedef enum { MAX_POOL, AVG_POOL, MAX_POOL_GRAD, AVG_POOL_GRAD } pool_kind;
typedef struct {
    int kh, kw, sh, sw;
    em_padding pad;
} pool_at;

/* x = in[0] (or, for avg_pool_grad, only its shape: the output's), dy = the last input. */
static void pool_ref_(const fw_case *c, double *e, pool_kind kind, pool_at a) {
    bool fwd = kind == MAX_POOL || kind == AVG_POOL;
    em_shape xs = kind == AVG_POOL_GRAD ? c->out_shape : c->in[0].shape;
    int64_t N = xs.dims[0], H = xs.dims[1], W = xs.dims[2], C = xs.dims[3], OH, OW, PH, PW;
    fw_out_dim(H, a.kh, a.sh, 1, a.pad, &OH, &PH);
    fw_out_dim(W, a.kw, a.sw, 1, a.pad, &OW, &PW);
    double *x = fw_load(c, kind == AVG_POOL_GRAD ? -1 : 0, xs);
    const int kdy = c->nin - 1;
    if (!fwd) ck_assert(em_shape_equal(c->in[kdy].shape, EM_SHAPE(N, OH, OW, C)));
    if (!fwd) memset(e, 0, sizeof(double) * (size_t)em_shape_numel(xs));
    for (int64_t n = 0; n < N; n++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++)
                for (int64_t ch = 0; ch < C; ch++) {
                    int64_t y0 = oy * a.sh - PH, x0 = ox * a.sw - PW, y1 = y0 + a.kh, x1 = x0 + a.kw;
                    y0 = y0 < 0 ? 0 : y0, x0 = x0 < 0 ? 0 : x0, y1 = y1 > H ? H : y1, x1 = x1 > W ? W : x1;
                    int64_t out = ((n * OH + oy) * OW + ox) * C + ch, first = -1, count = (y1 - y0) * (x1 - x0);
                    double best = -INFINITY, sum = 0, dy = fwd ? 0 : fw_held_in(c, kdy, out);
                    for (int64_t iy = y0; iy < y1; iy++)
                        for (int64_t ix = x0; ix < x1; ix++) {
                            int64_t at = ((n * H + iy) * W + ix) * C + ch;
                            if (first < 0 || x[at] > best) best = x[at], first = at; /* the first largest */
                            sum += x[at];
                            if (kind == AVG_POOL_GRAD) e[at] += dy / (double)count;
                        }
                    if (kind == MAX_POOL) e[out] = best;
                    if (kind == AVG_POOL) e[out] = sum / (double)count;
                    if (kind == MAX_POOL_GRAD) e[first] += dy;
                }
    free(x);
}

#define POOL_CASE(NAME, FN, KIND, KH, KW, SH, SW, PAD)                                                                 \
    static em_tensor *f_##NAME(em_tensor *const *in) { return FN(in[0], (const int[]){KH, KW}, (const int[]){SH, SW}, PAD); } \
    static void NAME##_ref(const fw_case *c, double *e) { pool_ref_(c, e, KIND, (pool_at){KH, KW, SH, SW, PAD}); }
POOL_CASE(max_pool_same, em_max_pool, MAX_POOL, 3, 3, 2, 2, EM_PAD_SAME)
POOL_CASE(max_pool_valid, em_max_pool, MAX_POOL, 2, 2, 2, 2, EM_PAD_VALID)
POOL_CASE(max_pool_same_2x2, em_max_pool, MAX_POOL, 2, 2, 2, 2, EM_PAD_SAME)
POOL_CASE(max_pool_valid_13, em_max_pool, MAX_POOL, 1, 3, 1, 2, EM_PAD_VALID)
POOL_CASE(avg_pool_same, em_avg_pool, AVG_POOL, 3, 3, 2, 2, EM_PAD_SAME)
POOL_CASE(avg_pool_valid, em_avg_pool, AVG_POOL, 2, 2, 1, 1, EM_PAD_VALID)
POOL_CASE(avg_pool_same_2x2, em_avg_pool, AVG_POOL, 2, 2, 2, 2, EM_PAD_SAME)

/* The pool gradients called as ops: i[0..1] strides, i[2..3] ksize, i[4]
 * padding, i[5..8] the input's shape (avg_pool_grad: the case's output's). */
static em_tensor *pool_op(em_op op, int n, em_tensor *const *in, pool_at a, em_shape s) {
    em_attrs at = {.i = {a.sh, a.sw, a.kh, a.kw, a.pad, s.dims[0], s.dims[1], s.dims[2], s.dims[3]}, .ni = 9};
    return em__apply(op, n, in, &at);
}
/* max_pool_grad(input = in[0], dy = in[1]) */
#define MPG_CASE(NAME, KH, KW, SH, SW, PAD)                                                                            \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return pool_op(EM_OP_MAX_POOL_GRAD, 2, in, (pool_at){KH, KW, SH, SW, PAD}, em_tensor_shape(in[0]));            \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { pool_ref_(c, e, MAX_POOL_GRAD, (pool_at){KH, KW, SH, SW, PAD}); }
/* max_pool_relu_grad(input = in[0], dy = in[1]): max_pool_grad, 0 where the input is not positive */
#define MPRG_CASE(NAME, KH, KW, SH, SW, PAD)                                                                           \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return pool_op(EM_OP_MAX_POOL_RELU_GRAD, 2, in, (pool_at){KH, KW, SH, SW, PAD}, em_tensor_shape(in[0]));       \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) {                                                              \
        pool_ref_(c, e, MAX_POOL_GRAD, (pool_at){KH, KW, SH, SW, PAD});                                                \
        for (int64_t i = 0; i < em_shape_numel(c->out_shape); i++)                                                     \
            if (!(fw_held_in(c, 0, i) > 0)) e[i] = 0;                                                                  \
    }
/* avg_pool_grad(dy = in[0]) -> input of shape S */
#define APG_CASE(NAME, KH, KW, SH, SW, PAD, ...)                                                                       \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return pool_op(EM_OP_AVG_POOL_GRAD, 1, in, (pool_at){KH, KW, SH, SW, PAD}, EM_SHAPE(__VA_ARGS__));              \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { pool_ref_(c, e, AVG_POOL_GRAD, (pool_at){KH, KW, SH, SW, PAD}); }
/* overlapping windows (gradients add up), windows that tile the input (stored),
 * windows that miss the last row and column, windows clipped by SAME padding */
MPG_CASE(max_pool_grad_same, 3, 3, 2, 2, EM_PAD_SAME)
MPG_CASE(max_pool_grad_tiles, 2, 2, 2, 2, EM_PAD_VALID)
MPG_CASE(max_pool_grad_same_2x2, 2, 2, 2, 2, EM_PAD_SAME)
MPRG_CASE(max_pool_relu_grad_same, 3, 3, 2, 2, EM_PAD_SAME)
MPRG_CASE(max_pool_relu_grad_tiles, 2, 2, 2, 2, EM_PAD_VALID)
APG_CASE(avg_pool_grad_same, 3, 3, 2, 2, EM_PAD_SAME, 1, 5, 6, 2)
APG_CASE(avg_pool_grad_tiles, 2, 2, 2, 2, EM_PAD_SAME, 2, 5, 3, 2)

/* Reached through the tape: the gradient of the pool of x = in[0] given dy = in[1]. */
#define POOL_TAPE_CASE(NAME, FN, KIND, KH, KW, SH, SW, PAD)                                                            \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        em_tape *tape = em_tape_begin(false);                                                                          \
        em_tensor *y = FN(in[0], (const int[]){KH, KW}, (const int[]){SH, SW}, PAD), *g = NULL;                        \
        int rc = y ? em_gradients_with(tape, y, in[1], 1, in, &g) : -1;                                                \
        em_tape_release(tape);                                                                                         \
        return rc ? NULL : g;                                                                                          \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { pool_ref_(c, e, KIND, (pool_at){KH, KW, SH, SW, PAD}); }
POOL_TAPE_CASE(max_pool_grad_tape_valid, em_max_pool, MAX_POOL_GRAD, 2, 2, 2, 2, EM_PAD_VALID)
POOL_TAPE_CASE(avg_pool_grad_tape_valid, em_avg_pool, AVG_POOL_GRAD, 2, 2, 1, 1, EM_PAD_VALID)

/* A row per float dtype: f_NAME, NAME_ref; float32 to 2e-6, float64 to 1e-12. */
#define IN(DT, S, X) {DT, S, X}
#define NN(DT, OPN, NAME, OS, NIN, ...)                                                                                \
    {OPN, DT, OPN " " #NAME " " #DT, f_##NAME, NIN, {__VA_ARGS__}, DT, OS, NULL, NAME##_ref, DT == EM_F32 ? 2e-6 : 1e-12}
#define NN1(DT, OPN, NAME, OS, S0, X0) NN(DT, OPN, NAME, OS, 1, IN(DT, S0, X0))
#define NN2(DT, OPN, NAME, OS, S0, X0, S1, X1) NN(DT, OPN, NAME, OS, 2, IN(DT, S0, X0), IN(DT, S1, X1))
#define FLOATS2(R, ...) R(EM_F32, __VA_ARGS__), R(EM_F64, __VA_ARGS__)
#define S4(a, b, c, d) EM_SHAPE(a, b, c, d)

const fw_case fw_cases_pool[] = {
    FLOATS2(NN1, "max_pool", max_pool_same, S4(1, 3, 3, 2), S4(1, 5, 6, 2), fw_ints_a),
    FLOATS2(NN1, "max_pool", max_pool_valid, S4(2, 2, 2, 1), S4(2, 4, 4, 1), fw_ints_a),
    FLOATS2(NN1, "max_pool", max_pool_same_2x2, S4(2, 3, 2, 2), S4(2, 5, 3, 2), fw_ints_a),
    FLOATS2(NN1, "max_pool", max_pool_valid_13, S4(1, 4, 2, 3), S4(1, 4, 5, 3), fw_ints_b),
    FLOATS2(NN1, "avg_pool", avg_pool_same, S4(1, 3, 3, 2), S4(1, 5, 6, 2), fw_ints_a),
    FLOATS2(NN1, "avg_pool", avg_pool_valid, S4(2, 2, 3, 1), S4(2, 3, 4, 1), fw_ints_a),
    FLOATS2(NN1, "avg_pool", avg_pool_same_2x2, S4(2, 3, 2, 2), S4(2, 5, 3, 2), fw_ints_b),
    FLOATS2(NN2, "max_pool_grad", max_pool_grad_same, S4(1, 5, 6, 2), S4(1, 5, 6, 2), fw_ints_a, S4(1, 3, 3, 2), fw_ints_b),
    FLOATS2(NN2, "max_pool_grad", max_pool_grad_tiles, S4(1, 4, 4, 2), S4(1, 4, 4, 2), fw_ints_a, S4(1, 2, 2, 2), fw_ints_b),
    FLOATS2(NN2, "max_pool_grad", max_pool_grad_same_2x2, S4(2, 5, 3, 2), S4(2, 5, 3, 2), fw_ints_b, S4(2, 3, 2, 2), fw_ints_a),
    FLOATS2(NN2, "max_pool_relu_grad", max_pool_relu_grad_same, S4(1, 5, 6, 2), S4(1, 5, 6, 2), fw_ints_a, S4(1, 3, 3, 2),
            fw_ints_b),
    FLOATS2(NN2, "max_pool_relu_grad", max_pool_relu_grad_tiles, S4(1, 4, 4, 2), S4(1, 4, 4, 2), fw_ints_a,
            S4(1, 2, 2, 2), fw_ints_b),
    FLOATS2(NN2, "max_pool_grad", max_pool_grad_tape_valid, S4(1, 5, 5, 2), S4(1, 5, 5, 2), fw_ints_a, S4(1, 2, 2, 2), fw_ints_b),
    FLOATS2(NN1, "avg_pool_grad", avg_pool_grad_same, S4(1, 5, 6, 2), S4(1, 3, 3, 2), fw_ints_b),
    FLOATS2(NN1, "avg_pool_grad", avg_pool_grad_tiles, S4(2, 5, 3, 2), S4(2, 3, 2, 2), fw_ints_a),
    FLOATS2(NN2, "avg_pool_grad", avg_pool_grad_tape_valid, S4(2, 3, 4, 1), S4(2, 3, 4, 1), fw_ints_a, S4(2, 2, 3, 1), fw_ints_b),
    {.fn = NULL},
};
