/* The public ops on fuzzed arguments: the input picks up to six ops in a
 * chain, each with fuzzed operands (any dtype, rank 0..4, small or empty
 * dims, strided views, earlier results) and fuzzed shape, axis, permutation,
 * slice, padding, stride and size arguments (small, negative or extreme).
 * Under a tape when asked, then gradients of the last float result. Every
 * call gives a valid tensor or NULL with a message. */
#include "fuzz.h"

#include <limits.h>
#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define POOL 12

typedef struct ops_state {
    fz f;
    em_tensor *pool[POOL];
    int n;
} ops_state;

/* An int argument (axis, stride, size): small, or now and then extreme. */
static int ops_int(fz *f) {
    static const int extreme[] = {INT_MAX, INT_MIN, INT_MAX - 1, INT_MIN + 1, 1 << 20, -(1 << 20)};
    unsigned k = fz_u8(f);
    return k >= 250 ? extreme[k - 250] : (int)(k % 12) - 5;
}

static double ops_double(fz *f) {
    static const double special[] = {0.0, -0.0, 1e300, -1e300, 1e-300, 0.5, 2.0, -1.0};
    unsigned k = fz_u8(f);
    if (k >= 248) return special[k - 248];
    return ((int)k - 124) / 8.0;
}

static em_shape ops_shape(fz *f) {
    em_shape s = {.ndim = (int)(fz_u8(f) % 6)};
    if (s.ndim == 5) s.ndim = (int)fz_range(f, -2, 10); /* bad ranks too */
    for (int d = 0; d < s.ndim && d < EM_MAX_DIMS; d++) s.dims[d] = fz_i64(f);
    return s;
}

/* A new operand: fuzzed dtype and small shape, values from the input, maybe
 * made a strided or offset view. */
static em_tensor *ops_new(fz *f) {
    em_dtype dt = (em_dtype)(fz_u8(f) % EM_DTYPE_COUNT);
    em_shape s = {.ndim = (int)(fz_u8(f) % 5)};
    for (int d = 0; d < s.ndim; d++) s.dims[d] = fz_u8(f) % 5;
    int64_t n = em_shape_numel(s);
    double v[4 * 4 * 4 * 4];
    for (int64_t i = 0; i < n; i++) v[i] = ((int)fz_u8(f) % 17 - 8) / (dt == EM_F32 || dt == EM_F64 ? 4.0 : 1.0);
    em_tensor *t = em_tensor_from(EM_F64, s, v);
    FZ_CHECK(t != NULL);
    if (dt == EM_BOOL) t = em_not_equal(t, em_zeros(EM_F64, EM_SHAPE0));
    else t = em_cast(t, dt);
    FZ_CHECK(t != NULL);
    switch (fz_u8(f) % 4) {
    case 1: t = em_transpose(t, EM_ALL_AXES); break;
    case 2:
        if (s.ndim) {
            int64_t begin[EM_MAX_DIMS] = {0}, len[EM_MAX_DIMS];
            for (int d = 0; d < s.ndim; d++) len[d] = -1;
            begin[0] = s.dims[0] > 0;
            t = em_slice(t, begin, len);
        }
        break;
    default: break;
    }
    FZ_CHECK(t != NULL);
    return t;
}

/* An operand: an earlier one or result, or a new one. */
#define OPERAND_MAX 4096 /* elements of a result kept as a later operand */

static em_tensor *ops_arg(ops_state *s) {
    unsigned k = fz_u8(&s->f);
    if (s->n && k % 3) return s->pool[k % s->n];
    em_tensor *t = ops_new(&s->f);
    if (s->n < POOL) s->pool[s->n++] = t;
    return t;
}

static void ops_ints(fz *f, int n, int *out) {
    for (int i = 0; i < n; i++) out[i] = ops_int(f);
}

static void ops_i64s(fz *f, int n, int64_t *out) {
    for (int i = 0; i < n; i++) out[i] = fz_i64(f);
}

typedef em_tensor *(*unary_fn)(em_tensor *);
typedef em_tensor *(*binary_fn)(em_tensor *, em_tensor *);
typedef em_tensor *(*reduce_fn)(em_tensor *, int, const int *, bool);
typedef em_tensor *(*random_fn)(em_dtype, em_shape, double, double);
typedef em_tensor *(*pool_fn)(em_tensor *, const int *, const int *, em_padding);

static const unary_fn unary[] = {
    em_neg,  em_abs,  em_square,  em_sign,     em_sqrt, em_rsqrt, em_exp,  em_log,           em_log1p, em_erf,
    em_relu, em_elu,  em_sigmoid, em_tanh,     em_softplus, em_gelu, em_logical_not, em_copy, em_stop_gradient,
};
static const binary_fn binary[] = {
    em_add,   em_sub,      em_mul,           em_div,        em_pow,         em_maximum,
    em_minimum, em_equal,  em_not_equal,     em_less,       em_less_equal,  em_greater,
    em_greater_equal, em_logical_and, em_logical_or, em_matmul, em_bias_add,
    em_sigmoid_cross_entropy_with_logits, em_softmax_cross_entropy_with_logits,
    em_sparse_softmax_cross_entropy_with_logits,
};
static const reduce_fn reduce[] = {em_sum, em_mean, em_max, em_min, em_prod, em_log_sum_exp};
static const random_fn random_ops[] = {em_random_normal, em_random_uniform, em_truncated_normal};

#define COUNT(a) ((unsigned)(sizeof(a) / sizeof((a)[0])))

/* Runs one fuzzed op; returns its result (or NULL). */
static em_tensor *ops_one(ops_state *s) {
    fz *f = &s->f;
    int ints[2 * EM_MAX_DIMS + 2];
    int64_t i64[2 * EM_MAX_DIMS + 2], i64b[EM_MAX_DIMS + 2];
    em_tensor *outs[4] = {NULL};
    unsigned op = fz_u8(f) % 36;
    switch (op) {
    case 0: return unary[fz_u8(f) % COUNT(unary)](ops_arg(s));
    case 1: {
        binary_fn fn = binary[fz_u8(f) % COUNT(binary)];
        em_tensor *a = ops_arg(s);
        return fn(a, ops_arg(s));
    }
    case 2: {
        reduce_fn fn = reduce[fz_u8(f) % COUNT(reduce)];
        em_tensor *x = ops_arg(s);
        int n = (int)(fz_u8(f) % 10) - 1;
        ops_ints(f, n > 0 ? n : 0, ints);
        return fn(x, n, n > 0 ? ints : NULL, fz_u8(f) & 1);
    }
    case 3: return (fz_u8(f) & 1 ? em_argmax : em_argmin)(ops_arg(s), ops_int(f));
    case 4: return (fz_u8(f) & 1 ? em_softmax : em_log_softmax)(ops_arg(s), ops_int(f));
    case 5: {
        em_tensor *x = ops_arg(s);
        return em_reshape(x, ops_shape(f));
    }
    case 6: {
        em_tensor *x = ops_arg(s);
        int n = (int)(fz_u8(f) % 11) - 1;
        ops_ints(f, n > 0 ? n : 0, ints);
        return em_transpose(x, n, n > 0 ? ints : NULL);
    }
    case 7: {
        em_tensor *x = ops_arg(s);
        return em_expand_dims(x, ops_int(f));
    }
    case 8: {
        em_tensor *x = ops_arg(s);
        int n = (int)(fz_u8(f) % 11) - 1;
        ops_ints(f, n > 0 ? n : 0, ints);
        return em_squeeze(x, n, n > 0 ? ints : NULL);
    }
    case 9: {
        em_tensor *x = ops_arg(s);
        return em_broadcast_to(x, ops_shape(f));
    }
    case 10: {
        em_tensor *xs[4];
        int n = (int)(fz_u8(f) % 5);
        for (int i = 0; i < n; i++) xs[i] = fz_u8(f) % 16 ? ops_arg(s) : NULL;
        return em_concat(n, xs, ops_int(f));
    }
    case 11: {
        em_tensor *x = ops_arg(s);
        int n = (int)(fz_u8(f) % 6) - 1, axis = ops_int(f);
        return em_split(x, n, axis, outs) ? NULL : outs[0];
    }
    case 12: {
        em_tensor *x = ops_arg(s);
        int n = (int)(fz_u8(f) % 5);
        ops_i64s(f, n, i64);
        return em_split_sizes(x, n, i64, ops_int(f), outs) ? NULL : n ? outs[0] : em_copy(x);
    }
    case 13: {
        em_tensor *x = ops_arg(s);
        ops_i64s(f, EM_MAX_DIMS, i64);
        ops_i64s(f, EM_MAX_DIMS, i64b);
        return em_slice(x, i64, i64b);
    }
    case 14: {
        em_tensor *p = ops_arg(s), *idx = ops_arg(s);
        return em_gather(p, idx, ops_int(f));
    }
    case 15: {
        em_tensor *idx = ops_arg(s);
        int64_t depth = fz_i64(f);
        return em_one_hot(idx, depth, ops_double(f), ops_double(f), (em_dtype)(fz_u8(f) % (EM_DTYPE_COUNT + 1)));
    }
    case 16: {
        em_tensor *x = ops_arg(s);
        ops_i64s(f, 2 * EM_MAX_DIMS, i64);
        return em_pad(x, i64, ops_double(f));
    }
    case 17: {
        em_tensor *x = ops_arg(s);
        ops_i64s(f, EM_MAX_DIMS, i64);
        return em_tile(x, i64);
    }
    case 18: {
        em_tensor *in = ops_arg(s), *filt = ops_arg(s);
        ops_ints(f, 4, ints);
        unsigned k = fz_u8(f);
        return em_conv2d(in, filt, k & 1 ? ints : NULL, (em_padding)(k >> 1 & 1), k & 4 ? ints + 2 : NULL);
    }
    case 19: {
        pool_fn fn = fz_u8(f) & 1 ? em_max_pool : em_avg_pool;
        em_tensor *in = ops_arg(s);
        ops_ints(f, 4, ints);
        return fn(in, ints, ints + 2, (em_padding)(fz_u8(f) % 3));
    }
    case 20: {
        random_fn fn = random_ops[fz_u8(f) % COUNT(random_ops)];
        em_dtype dt = (em_dtype)(fz_u8(f) % EM_DTYPE_COUNT);
        em_shape sh = ops_shape(f);
        return fn(dt, sh, ops_double(f), ops_double(f));
    }
    case 21: {
        em_dtype dt = (em_dtype)(fz_u8(f) % EM_DTYPE_COUNT);
        double a = ops_double(f), b = ops_double(f);
        return em_arange(dt, a, b, ops_double(f));
    }
    case 22: {
        em_dtype dt = (em_dtype)(fz_u8(f) % (EM_DTYPE_COUNT + 1));
        em_shape sh = ops_shape(f);
        return em_fill(dt, sh, ops_double(f));
    }
    case 23: {
        em_tensor *x = ops_arg(s);
        return em_cast(x, (em_dtype)(fz_u8(f) % (EM_DTYPE_COUNT + 1)));
    }
    case 24: {
        em_tensor *x = ops_arg(s);
        double lo = ops_double(f);
        return em_clip_by_value(x, lo, ops_double(f));
    }
    case 25: {
        em_tensor *x = ops_arg(s);
        return em_leaky_relu(x, ops_double(f));
    }
    case 26: {
        em_tensor *x = ops_arg(s);
        return (fz_u8(f) & 1 ? em_add_scalar : em_mul_scalar)(x, ops_double(f));
    }
    case 27: {
        em_tensor *x = ops_arg(s);
        return em_dropout(x, ops_double(f));
    }
    case 28: {
        em_tensor *c = ops_arg(s), *a = ops_arg(s);
        return em_where(c, a, ops_arg(s));
    }
    case 29: {
        em_tensor *a = ops_arg(s), *b = ops_arg(s);
        unsigned k = fz_u8(f);
        return em_matmul_t(a, b, k & 1, k & 2);
    }
    case 30: {
        em_tensor *x = ops_arg(s);
        return em_clip_by_norm(x, ops_double(f));
    }
    case 31: {
        em_tensor *g[3] = {ops_arg(s), fz_u8(f) & 1 ? ops_arg(s) : NULL, ops_arg(s)};
        double norm;
        return em_clip_by_global_norm(3, g, ops_double(f), outs, &norm) ? NULL : outs[0];
    }
    case 32: {
        /* element access with fuzzed indices */
        em_tensor *x = ops_arg(s);
        ops_i64s(f, EM_MAX_DIMS, i64);
        double v = em_get(x, i64);
        if (isnan(v) && em_last_error()) fz_failed_with_message();
        (void)em_dim(x, ops_int(f));
        em_clear_error();
        v = em_item(x);
        if (isnan(v) && em_last_error()) fz_failed_with_message();
        return em_copy(x);
    }
    case 33: {
        em_tensor *x = ops_arg(s);
        char buf[64];
        size_t cap = fz_u8(f) % sizeof buf;
        int len = em_format(x, cap ? buf : NULL, cap);
        if (len < 0) fz_failed_with_message();
        else if (cap) FZ_CHECK(strlen(buf) == ((size_t)len < cap ? (size_t)len : cap - 1));
        return em_copy(x);
    }
    case 34: {
        em_tensor *x = ops_arg(s);
        size_t bytes = (size_t)(fz_u8(f) % 64);
        uint8_t dst[64];
        if (em_copy_out(x, dst, bytes)) fz_failed_with_message();
        return em_copy(x);
    }
    default: {
        em_dtype dt = (em_dtype)(fz_u8(f) % (EM_DTYPE_COUNT + 1));
        em_shape sh = ops_shape(f);
        unsigned k = fz_u8(f) % 3;
        return k == 0 ? em_zeros(dt, sh) : k == 1 ? em_ones(dt, sh) : em_scalar(dt, ops_double(f));
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ops_state s = {.f = {data, size}};
    fz_begin();
    unsigned flags = fz_u8(&s.f);
    em_set_seed(flags);
    em_tape *tape = flags & 1 ? em_tape_begin(flags & 2) : NULL;
    em_tensor *last = NULL;
    int nops = 1 + (int)(fz_u8(&s.f) % 6);
    for (int i = 0; i < nops; i++) {
        em_tensor *r = ops_one(&s);
        if (!r) {
            fz_failed_with_message();
            continue;
        }
        FZ_CHECK((unsigned)em_tensor_dtype(r) < EM_DTYPE_COUNT);
        FZ_CHECK(em_numel(r) == em_shape_numel(em_tensor_shape(r)));
        fz_touch(r);
        last = r;
        /* Big results (a broadcast view can stand for 2^40 elements) are not
         * fed to later ops: a matmul over them is slow, not wrong. */
        if (s.n < POOL && em_numel(r) <= OPERAND_MAX) s.pool[s.n++] = r;
    }
    if (tape) {
        em_tape_stop(tape);
        em_dtype dt = last ? em_tensor_dtype(last) : EM_I32;
        if (dt == EM_F32 || dt == EM_F64) {
            em_tensor *grads[POOL];
            if (em_gradients(tape, last, s.n, s.pool, grads) == 0) {
                for (int i = 0; i < s.n; i++) {
                    FZ_CHECK(grads[i] != NULL);
                    FZ_CHECK(em_shape_equal(em_tensor_shape(grads[i]), em_tensor_shape(s.pool[i])));
                    fz_touch(grads[i]);
                }
            } else {
                fz_failed_with_message();
            }
        }
        em_tape_release(tape);
    }
    fz_end();
    return 0;
}
