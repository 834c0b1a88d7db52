/* The public ops on fuzzed arguments: the input names up to six ops in a
 * chain, each with fuzzed operands (any dtype, rank 0..4, small or empty
 * dims, strided views, earlier results) and fuzzed shape, axis, permutation,
 * slice, padding, stride and size arguments (small, negative or extreme).
 * Under a tape when asked, then gradients of the last float result. Every
 * call gives a valid tensor or NULL with a message.
 *
 * The input: a flags byte (bit 0: run under a tape, bit 1: a persistent one;
 * the byte also seeds the random ops), a byte n for 1 + n % 6 steps, then
 * each step: its op's name, ended by a NUL byte (or the input's end), and
 * the arguments its handler reads. A name not in ops_table skips the step.
 * Steps name their ops, never number them, so adding an op leaves what the
 * stored corpus means unchanged; libFuzzer learns the names from the strcmp
 * against the table. The table: every elementwise op with a plain public
 * function (api PLAIN in lib/ops/elementwise.def, by arity), then the
 * hand-written handlers, keyed by the op's name (lib/ops/<family>.def) or,
 * for a public function that is not one op, the function's name without
 * em_ (mean, expand_dims, add_scalar, get ...). */
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

typedef struct op_entry op_entry;
typedef em_tensor *(*unary_fn)(em_tensor *);
typedef em_tensor *(*binary_fn)(em_tensor *, em_tensor *);
typedef em_tensor *(*ternary_fn)(em_tensor *, em_tensor *, em_tensor *);
typedef em_tensor *(*reduce_fn)(em_tensor *, int, const int *, bool);
typedef em_tensor *(*axis_fn)(em_tensor *, int);
typedef em_tensor *(*scalar_fn)(em_tensor *, double);
typedef em_tensor *(*make_fn)(em_dtype, em_shape);
typedef em_tensor *(*random_fn)(em_dtype, em_shape, double, double);
typedef em_tensor *(*pool_fn)(em_tensor *, const int *, const int *, em_padding);

/* One named step: run reads the op's arguments and calls it (with the entry's
 * function, for handlers shared by ops of one signature); NULL on failure.
 * Handlers read at most one argument within a call's argument list: C leaves
 * their order open, and gcc (the replay) and clang (the fuzzer) differ. */
struct op_entry {
    const char *name;
    em_tensor *(*run)(ops_state *s, const op_entry *e);
    unary_fn unary;
    binary_fn binary;
    ternary_fn ternary;
    reduce_fn reduce;
    axis_fn axis;
    scalar_fn scalar;
    make_fn make;
    random_fn random;
    pool_fn pool;
};

static em_tensor *run_unary(ops_state *s, const op_entry *e) { return e->unary(ops_arg(s)); }

static em_tensor *run_binary(ops_state *s, const op_entry *e) {
    em_tensor *a = ops_arg(s);
    return e->binary(a, ops_arg(s));
}

static em_tensor *run_ternary(ops_state *s, const op_entry *e) {
    em_tensor *a = ops_arg(s), *b = ops_arg(s);
    return e->ternary(a, b, ops_arg(s));
}

static em_tensor *run_reduce(ops_state *s, const op_entry *e) {
    fz *f = &s->f;
    int ints[2 * EM_MAX_DIMS + 2];
    em_tensor *x = ops_arg(s);
    int n = (int)(fz_u8(f) % 10) - 1;
    ops_ints(f, n > 0 ? n : 0, ints);
    return e->reduce(x, n, n > 0 ? ints : NULL, fz_u8(f) & 1);
}

/* argmax, argmin, softmax, log_softmax */
static em_tensor *run_axis(ops_state *s, const op_entry *e) {
    em_tensor *x = ops_arg(s);
    return e->axis(x, ops_int(&s->f));
}

/* add_scalar, mul_scalar, leaky_relu, dropout, clip_by_norm */
static em_tensor *run_scalar(ops_state *s, const op_entry *e) {
    em_tensor *x = ops_arg(s);
    return e->scalar(x, ops_double(&s->f));
}

/* cumsum, cumprod: axis, then exclusive and reverse from one byte */
static em_tensor *run_scan(ops_state *s, const op_entry *e) {
    em_tensor *x = ops_arg(s);
    int axis = ops_int(&s->f);
    unsigned k = fz_u8(&s->f);
    return (e->name[3] == 's' ? em_cumsum : em_cumprod)(x, axis, k & 1, k & 2);
}

static em_tensor *run_moments(ops_state *s, const op_entry *e) {
    (void)e;
    fz *f = &s->f;
    int ints[2 * EM_MAX_DIMS + 2];
    em_tensor *x = ops_arg(s), *mean = NULL, *var = NULL;
    int n = (int)(fz_u8(f) % 10) - 1;
    ops_ints(f, n > 0 ? n : 0, ints);
    FZ_CHECK(em_moments(x, n, n > 0 ? ints : NULL, fz_u8(f) & 1, &mean, &var) == 0 ? mean && var : !mean && !var);
    return var;
}

static em_tensor *run_norm(ops_state *s, const op_entry *e) {
    (void)e;
    fz *f = &s->f;
    static const double ords[] = {1, 2, INFINITY, -INFINITY, 0, 3};
    int ints[2 * EM_MAX_DIMS + 2];
    em_tensor *x = ops_arg(s);
    double ord = ords[fz_u8(f) % 6];
    int n = (int)(fz_u8(f) % 10) - 1;
    ops_ints(f, n > 0 ? n : 0, ints);
    return em_norm(x, ord, n, n > 0 ? ints : NULL, fz_u8(f) & 1);
}

static em_tensor *run_eye(ops_state *s, const op_entry *e) {
    (void)e;
    int64_t rows = ops_int(&s->f), cols = ops_int(&s->f);
    return em_eye(rows, cols, (em_dtype)(fz_u8(&s->f) % (EM_DTYPE_COUNT + 1)));
}

static em_tensor *run_linspace(ops_state *s, const op_entry *e) {
    (void)e;
    double start = ops_double(&s->f), stop = ops_double(&s->f);
    int64_t num = ops_int(&s->f);
    return em_linspace(start, stop, num, (em_dtype)(fz_u8(&s->f) % (EM_DTYPE_COUNT + 1)));
}

static em_tensor *run_band_part(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    int64_t lower = ops_int(&s->f);
    return em_band_part(x, lower, ops_int(&s->f));
}

/* An equation of up to 15 characters from einsum's alphabet and some it rejects, on 0 to 3 operands. */
static em_tensor *run_einsum(ops_state *s, const op_entry *e) {
    (void)e;
    static const char alphabet[] = "abij,->.kA 1";
    char eq[16];
    int len = fz_u8(&s->f) % 16, n = fz_u8(&s->f) % 4;
    for (int i = 0; i < len; i++) eq[i] = alphabet[fz_u8(&s->f) % (sizeof alphabet - 1)];
    eq[len] = '\0';
    em_tensor *in[3];
    for (int i = 0; i < n; i++) in[i] = ops_arg(s);
    return em_einsum(eq, n, n ? in : NULL);
}

static em_tensor *run_categorical(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *logits = ops_arg(s);
    return em_categorical(logits, ops_int(&s->f));
}

static em_tensor *run_matmul(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *a = ops_arg(s), *b = ops_arg(s);
    unsigned k = fz_u8(&s->f);
    return em_matmul_t(a, b, k & 1, k & 2);
}

static em_tensor *run_cast(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    return em_cast(x, (em_dtype)(fz_u8(&s->f) % (EM_DTYPE_COUNT + 1)));
}

static em_tensor *run_clip(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    double lo = ops_double(&s->f);
    return em_clip_by_value(x, lo, ops_double(&s->f));
}

static em_tensor *run_reshape(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    return em_reshape(x, ops_shape(&s->f));
}

static em_tensor *run_broadcast_to(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    return em_broadcast_to(x, ops_shape(&s->f));
}

static em_tensor *run_transpose(ops_state *s, const op_entry *e) {
    (void)e;
    int ints[2 * EM_MAX_DIMS + 2];
    em_tensor *x = ops_arg(s);
    int n = (int)(fz_u8(&s->f) % 11) - 1;
    ops_ints(&s->f, n > 0 ? n : 0, ints);
    return em_transpose(x, n, n > 0 ? ints : NULL);
}

static em_tensor *run_expand_dims(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    return em_expand_dims(x, ops_int(&s->f));
}

static em_tensor *run_squeeze(ops_state *s, const op_entry *e) {
    (void)e;
    int ints[2 * EM_MAX_DIMS + 2];
    em_tensor *x = ops_arg(s);
    int n = (int)(fz_u8(&s->f) % 11) - 1;
    ops_ints(&s->f, n > 0 ? n : 0, ints);
    return em_squeeze(x, n, n > 0 ? ints : NULL);
}

static em_tensor *run_concat(ops_state *s, const op_entry *e) {
    (void)e;
    fz *f = &s->f;
    em_tensor *xs[4];
    int n = (int)(fz_u8(f) % 5);
    for (int i = 0; i < n; i++) xs[i] = fz_u8(f) % 16 ? ops_arg(s) : NULL;
    return em_concat(n, xs, ops_int(f));
}

static em_tensor *run_split(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *outs[4] = {NULL};
    em_tensor *x = ops_arg(s);
    int n = (int)(fz_u8(&s->f) % 6) - 1, axis = ops_int(&s->f);
    return em_split(x, n, axis, outs) ? NULL : outs[0];
}

static em_tensor *run_split_sizes(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *outs[4] = {NULL};
    int64_t sizes[4];
    em_tensor *x = ops_arg(s);
    int n = (int)(fz_u8(&s->f) % 5);
    ops_i64s(&s->f, n, sizes);
    return em_split_sizes(x, n, sizes, ops_int(&s->f), outs) ? NULL : n ? outs[0] : em_copy(x);
}

static em_tensor *run_slice(ops_state *s, const op_entry *e) {
    (void)e;
    int64_t begin[EM_MAX_DIMS], len[EM_MAX_DIMS];
    em_tensor *x = ops_arg(s);
    ops_i64s(&s->f, EM_MAX_DIMS, begin);
    ops_i64s(&s->f, EM_MAX_DIMS, len);
    return em_slice(x, begin, len);
}

static em_tensor *run_gather(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *p = ops_arg(s), *idx = ops_arg(s);
    return em_gather(p, idx, ops_int(&s->f));
}

static em_tensor *run_scatter_nd(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *idx = ops_arg(s), *updates = ops_arg(s);
    return em_scatter_nd(idx, updates, ops_shape(&s->f));
}

static em_tensor *run_unsorted_segment_sum(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *data = ops_arg(s), *ids = ops_arg(s);
    return em_unsorted_segment_sum(data, ids, fz_i64(&s->f));
}

static em_tensor *run_top_k(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s), *values = NULL, *indices = NULL;
    int k = ops_int(&s->f);
    bool want_indices = fz_u8(&s->f) & 1;
    if (em_top_k(x, k, true, &values, &indices)) return NULL;
    return want_indices ? indices : values;
}

static em_tensor *run_sort(ops_state *s, const op_entry *e) {
    em_tensor *x = ops_arg(s);
    int axis = ops_int(&s->f);
    bool descending = fz_u8(&s->f) & 1;
    return (strcmp(e->name, "argsort") ? em_sort : em_argsort)(x, axis, descending);
}

static em_tensor *run_one_hot(ops_state *s, const op_entry *e) {
    (void)e;
    fz *f = &s->f;
    em_tensor *idx = ops_arg(s);
    int64_t depth = fz_i64(f);
    double on = ops_double(f), off = ops_double(f);
    return em_one_hot(idx, depth, on, off, (em_dtype)(fz_u8(f) % (EM_DTYPE_COUNT + 1)));
}

/* ignore_index: PyTorch's -100, a small index (maybe a real class) or an extreme one */
static em_tensor *run_sparse_xent_ignore(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *labels = ops_arg(s), *logits = ops_arg(s);
    unsigned k = fz_u8(&s->f);
    int64_t ignore = k < 128 ? -100 : k < 250 ? (int64_t)(k % 8) - 2 : fz_i64(&s->f);
    return em_sparse_softmax_cross_entropy_ignore(labels, logits, ignore);
}

static em_tensor *run_pad(ops_state *s, const op_entry *e) {
    (void)e;
    int64_t pads[2 * EM_MAX_DIMS];
    em_tensor *x = ops_arg(s);
    ops_i64s(&s->f, 2 * EM_MAX_DIMS, pads);
    return em_pad(x, pads, ops_double(&s->f));
}

static em_tensor *run_tile(ops_state *s, const op_entry *e) {
    (void)e;
    int64_t reps[EM_MAX_DIMS];
    em_tensor *x = ops_arg(s);
    ops_i64s(&s->f, EM_MAX_DIMS, reps);
    return em_tile(x, reps);
}

static em_tensor *run_conv2d(ops_state *s, const op_entry *e) {
    (void)e;
    int ints[4];
    em_tensor *in = ops_arg(s), *filt = ops_arg(s);
    ops_ints(&s->f, 4, ints);
    unsigned k = fz_u8(&s->f);
    return em_conv2d(in, filt, k & 1 ? ints : NULL, (em_padding)(k >> 1 & 1), k & 4 ? ints + 2 : NULL);
}

static em_tensor *run_conv1d(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *in = ops_arg(s), *filt = ops_arg(s);
    int stride = ops_int(&s->f), dilation = ops_int(&s->f);
    return em_conv1d(in, filt, stride, (em_padding)(fz_u8(&s->f) % 3), dilation);
}

static em_tensor *run_conv2d_transpose(ops_state *s, const op_entry *e) {
    (void)e;
    int ints[2];
    em_tensor *in = ops_arg(s), *filt = ops_arg(s);
    em_shape out = ops_shape(&s->f);
    ops_ints(&s->f, 2, ints);
    unsigned k = fz_u8(&s->f);
    return em_conv2d_transpose(in, filt, out, k & 1 ? ints : NULL, (em_padding)(k >> 1 & 1));
}

/* depthwise_conv2d, and separable_conv2d with a third operand */
static em_tensor *run_depthwise(ops_state *s, const op_entry *e) {
    int ints[4];
    em_tensor *in = ops_arg(s), *filt = ops_arg(s), *point = strcmp(e->name, "depthwise_conv2d") ? ops_arg(s) : NULL;
    ops_ints(&s->f, 4, ints);
    unsigned k = fz_u8(&s->f);
    em_padding pad = (em_padding)(k >> 1 & 1);
    return point ? em_separable_conv2d(in, filt, point, k & 1 ? ints : NULL, pad, k & 4 ? ints + 2 : NULL)
                 : em_depthwise_conv2d(in, filt, k & 1 ? ints : NULL, pad, k & 4 ? ints + 2 : NULL);
}

static em_tensor *run_batch_normalization(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s), *mean = ops_arg(s), *var = ops_arg(s), *offset = ops_arg(s), *scale = ops_arg(s);
    return em_batch_normalization(x, mean, var, offset, scale, ops_double(&s->f));
}

static em_tensor *run_fused_batch_norm(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s), *scale = ops_arg(s), *offset = ops_arg(s);
    double eps = ops_double(&s->f), momentum = ops_double(&s->f);
    bool training = fz_u8(&s->f) & 1;
    return em_fused_batch_norm(x, scale, offset, eps, momentum, training, "fuzz_bn");
}

static em_tensor *run_l2_normalize(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    int axis = ops_int(&s->f);
    return em_l2_normalize(x, 1, &axis, ops_double(&s->f));
}

/* the cross entropies with a scalar: label smoothing, pos_weight */
static em_tensor *run_xent_scalar(ops_state *s, const op_entry *e) {
    em_tensor *labels = ops_arg(s), *logits = ops_arg(s);
    double v = ops_double(&s->f);
    return strcmp(e->name, "softmax_cross_entropy_smoothed") ? em_weighted_cross_entropy_with_logits(labels, logits, v)
                                                             : em_softmax_cross_entropy_smoothed(labels, logits, v);
}

/* max_pool, avg_pool */
static em_tensor *run_pool(ops_state *s, const op_entry *e) {
    int ints[4];
    em_tensor *in = ops_arg(s);
    ops_ints(&s->f, 4, ints);
    return e->pool(in, ints, ints + 2, (em_padding)(fz_u8(&s->f) % 3));
}

static em_tensor *run_random(ops_state *s, const op_entry *e) {
    fz *f = &s->f;
    em_dtype dt = (em_dtype)(fz_u8(f) % EM_DTYPE_COUNT);
    em_shape sh = ops_shape(f);
    double a = ops_double(f), b = ops_double(f);
    return e->random(dt, sh, a, b);
}

static em_tensor *run_arange(ops_state *s, const op_entry *e) {
    (void)e;
    fz *f = &s->f;
    em_dtype dt = (em_dtype)(fz_u8(f) % EM_DTYPE_COUNT);
    double a = ops_double(f), b = ops_double(f);
    return em_arange(dt, a, b, ops_double(f));
}

static em_tensor *run_fill(ops_state *s, const op_entry *e) {
    (void)e;
    fz *f = &s->f;
    em_dtype dt = (em_dtype)(fz_u8(f) % (EM_DTYPE_COUNT + 1));
    em_shape sh = ops_shape(f);
    return em_fill(dt, sh, ops_double(f));
}

/* zeros, ones */
static em_tensor *run_make(ops_state *s, const op_entry *e) {
    em_dtype dt = (em_dtype)(fz_u8(&s->f) % (EM_DTYPE_COUNT + 1));
    return e->make(dt, ops_shape(&s->f));
}

static em_tensor *run_scalar_new(ops_state *s, const op_entry *e) {
    (void)e;
    em_dtype dt = (em_dtype)(fz_u8(&s->f) % (EM_DTYPE_COUNT + 1));
    return em_scalar(dt, ops_double(&s->f));
}

static em_tensor *run_clip_by_global_norm(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *outs[3] = {NULL}, *g[3];
    g[0] = ops_arg(s);
    g[1] = fz_u8(&s->f) & 1 ? ops_arg(s) : NULL;
    g[2] = ops_arg(s);
    double norm;
    return em_clip_by_global_norm(3, g, ops_double(&s->f), outs, &norm) ? NULL : outs[0];
}

/* element access with fuzzed indices */
static em_tensor *run_get(ops_state *s, const op_entry *e) {
    (void)e;
    int64_t index[EM_MAX_DIMS];
    em_tensor *x = ops_arg(s);
    ops_i64s(&s->f, EM_MAX_DIMS, index);
    double v = em_get(x, index);
    if (isnan(v) && em_last_error()) fz_failed_with_message();
    (void)em_dim(x, ops_int(&s->f));
    em_clear_error();
    v = em_item(x);
    if (isnan(v) && em_last_error()) fz_failed_with_message();
    return em_copy(x);
}

static em_tensor *run_format(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    char buf[64];
    size_t cap = fz_u8(&s->f) % sizeof buf;
    int len = em_format(x, cap ? buf : NULL, cap);
    if (len < 0) fz_failed_with_message();
    else if (cap) FZ_CHECK(strlen(buf) == ((size_t)len < cap ? (size_t)len : cap - 1));
    return em_copy(x);
}

static em_tensor *run_copy_out(ops_state *s, const op_entry *e) {
    (void)e;
    em_tensor *x = ops_arg(s);
    size_t bytes = (size_t)(fz_u8(&s->f) % 64);
    uint8_t dst[64];
    if (em_copy_out(x, dst, bytes)) fz_failed_with_message();
    return em_copy(x);
}

static const op_entry ops_table[] = {
/* The elementwise ops with a plain public function, by arity. */
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost, out, api, fn) OPS_ROW_##api(arity, name, fn)
#define OPS_ROW_PLAIN(arity, name, fn) OPS_PLAIN_##arity(name, fn)
#define OPS_ROW_OWN(arity, name, fn)
#define OPS_ROW_INTERNAL(arity, name, fn)
#define OPS_PLAIN_1(name, fn) {#name, run_unary, .unary = fn},
#define OPS_PLAIN_2(name, fn) {#name, run_binary, .binary = fn},
#define OPS_PLAIN_3(name, fn) {#name, run_ternary, .ternary = fn},
#include "ops/elementwise.def"
#undef EM_OP
#undef OPS_ROW_PLAIN
#undef OPS_ROW_OWN
#undef OPS_ROW_INTERNAL
#undef OPS_PLAIN_1
#undef OPS_PLAIN_2
#undef OPS_PLAIN_3
    /* elementwise, with attributes */
    {"leaky_relu", run_scalar, .scalar = em_leaky_relu},
    {"clip", .run = run_clip},
    {"cast", .run = run_cast},
    {"add_scalar", run_scalar, .scalar = em_add_scalar},
    {"mul_scalar", run_scalar, .scalar = em_mul_scalar},
    /* reductions */
    {"sum", run_reduce, .reduce = em_sum},
    {"mean", run_reduce, .reduce = em_mean},
    {"max", run_reduce, .reduce = em_max},
    {"min", run_reduce, .reduce = em_min},
    {"prod", run_reduce, .reduce = em_prod},
    {"log_sum_exp", run_reduce, .reduce = em_log_sum_exp},
    {"reduce_any", run_reduce, .reduce = em_reduce_any},
    {"reduce_all", run_reduce, .reduce = em_reduce_all},
    {"moments", .run = run_moments},
    {"norm", .run = run_norm},
    {"argmax", run_axis, .axis = em_argmax},
    {"argmin", run_axis, .axis = em_argmin},
    /* scans */
    {"cumsum", .run = run_scan},
    {"cumprod", .run = run_scan},
    /* matmul */
    {"matmul", .run = run_matmul},
    {"einsum", .run = run_einsum},
    /* shape */
    {"reshape", .run = run_reshape},
    {"transpose", .run = run_transpose},
    {"expand_dims", .run = run_expand_dims},
    {"squeeze", .run = run_squeeze},
    {"broadcast_to", .run = run_broadcast_to},
    {"stop_gradient", run_unary, .unary = em_stop_gradient},
    {"concat", .run = run_concat},
    {"split", .run = run_split},
    {"split_sizes", .run = run_split_sizes},
    {"slice", .run = run_slice},
    {"gather", .run = run_gather},
    {"one_hot", .run = run_one_hot},
    /* index */
    {"gather_nd", run_binary, .binary = em_gather_nd},
    {"scatter_nd", .run = run_scatter_nd},
    {"tensor_scatter_add", run_ternary, .ternary = em_tensor_scatter_add},
    {"unsorted_segment_sum", .run = run_unsorted_segment_sum},
    {"top_k", .run = run_top_k},
    {"sort", .run = run_sort},
    {"argsort", .run = run_sort},
    {"pad", .run = run_pad},
    {"tile", .run = run_tile},
    {"band_part", .run = run_band_part},
    {"where_indices", run_unary, .unary = em_where_indices},
    /* nn */
    {"softmax", run_axis, .axis = em_softmax},
    {"log_softmax", run_axis, .axis = em_log_softmax},
    {"bias_add", run_binary, .binary = em_bias_add},
    {"sigmoid_xent", run_binary, .binary = em_sigmoid_cross_entropy_with_logits},
    {"softmax_xent", run_binary, .binary = em_softmax_cross_entropy_with_logits},
    {"sparse_softmax_xent", run_binary, .binary = em_sparse_softmax_cross_entropy_with_logits},
    {"sparse_softmax_cross_entropy_ignore", .run = run_sparse_xent_ignore},
    {"conv2d", .run = run_conv2d},
    {"conv1d", .run = run_conv1d},
    {"conv2d_transpose", .run = run_conv2d_transpose},
    {"depthwise_conv2d", .run = run_depthwise},
    {"separable_conv2d", .run = run_depthwise},
    {"batch_normalization", .run = run_batch_normalization},
    {"fused_batch_norm", .run = run_fused_batch_norm},
    {"l2_normalize", .run = run_l2_normalize},
    {"softmax_cross_entropy_smoothed", .run = run_xent_scalar},
    {"weighted_cross_entropy_with_logits", .run = run_xent_scalar},
    {"max_pool", run_pool, .pool = em_max_pool},
    {"avg_pool", run_pool, .pool = em_avg_pool},
    {"dropout", run_scalar, .scalar = em_dropout},
    /* random */
    {"random_normal", run_random, .random = em_random_normal},
    {"random_uniform", run_random, .random = em_random_uniform},
    {"truncated_normal", run_random, .random = em_truncated_normal},
    {"categorical", .run = run_categorical},
    {"random_shuffle", run_unary, .unary = em_random_shuffle},
    /* new tensors */
    {"arange", .run = run_arange},
    {"fill", .run = run_fill},
    {"zeros", run_make, .make = em_zeros},
    {"ones", run_make, .make = em_ones},
    {"eye", .run = run_eye},
    {"linspace", .run = run_linspace},
    {"scalar", .run = run_scalar_new},
    {"copy", run_unary, .unary = em_copy},
    /* training helpers */
    {"clip_by_norm", run_scalar, .scalar = em_clip_by_norm},
    {"clip_by_global_norm", .run = run_clip_by_global_norm},
    /* reading tensors back */
    {"get", .run = run_get},
    {"format", .run = run_format},
    {"copy_out", .run = run_copy_out},
};
#define OPS_COUNT ((int)(sizeof ops_table / sizeof ops_table[0]))

/* Reads a step's op name: its entry, or NULL for a name not in the table. */
static const op_entry *ops_named(fz *f) {
    static bool checked;
    if (!checked) { /* one handler per name: an op named twice would shadow one */
        for (int i = 0; i < OPS_COUNT; i++)
            for (int j = i + 1; j < OPS_COUNT; j++) FZ_CHECK(strcmp(ops_table[i].name, ops_table[j].name) != 0);
        checked = true;
    }
    char name[40];
    if (!fz_str(f, name, sizeof name)) return NULL;
    for (int i = 0; i < OPS_COUNT; i++)
        if (!strcmp(name, ops_table[i].name)) return &ops_table[i];
    return NULL;
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
        const op_entry *op = ops_named(&s.f);
        if (!op) continue;
        em_tensor *r = op->run(&s, op);
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
