/* The elementwise family: arithmetic, math functions, activations, clip,
 * where, cast, comparisons and logic. Its ops are the lines of
 * elementwise.def; their formulas live in elementwise_math.h, shared with
 * the CUDA kernels (gpu/elementwise.cu).
 *
 * Every op reads its inputs in place through broadcast strides (lib/broadcast.h):
 * broadcasts and strided views cost no copies. The output is cut into fixed
 * chunks of EW_GRAIN elements (em__parallel_for), each chunk into runs of the
 * innermost axis, and each run goes to a "row" function made per op and
 * dtype around the op's formula. A row whose operands are contiguous (or
 * scalar) is an `omp simd` loop the compiler vectorizes; a contiguous
 * same-shape call is a single run per chunk. bfloat16 and float16 compute
 * with the op's float32 formula and round once, so a pass moves 2 bytes an
 * element: bfloat16 rows widen and round in the loop itself (a shift, a few
 * integer adds), float16 rows run the float32 row tile by tile
 * (ew_narrow_row), each input tile widened into float32 on the stack. */
#include "elementwise_math.h"
#include "narrow.h"

#include "../broadcast.h"
#include "../internal.h"

#define EW_GRAIN 32768
#define EW_SIMD _Pragma("omp simd")

/* One run of n output elements: in[k] is input k's first element, s[k] its
 * stride (elements) along the run, f the op's float attributes. */
typedef void (*ew_row_fn)(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f);

/* ---- row functions around the formulas ----
 * Values are loaded as C (the formula's type) by LD and results stored by
 * ST: as they are, or for bfloat16 widened to float32 and rounded back in the
 * loop (shifts and adds that vectorize with the formula). */
#define EW_ID(v) (v)

#define EW_ROW1(name, TO, TI, F, C, LD, ST)                                                                            \
    EM_HOT_MATH                                                                                                        \
    static void name(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f) {                 \
        TO *restrict o = out;                                                                                          \
        const TI *restrict a = in[0];                                                                                  \
        const int64_t sa = s[0];                                                                                       \
        if (sa == 1) {                                                                                                 \
            EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = ST(F(LD(a[i]), f));                                         \
        } else {                                                                                                       \
            for (int64_t i = 0; i < n; i++) o[i] = ST(F(LD(a[i * sa]), f));                                            \
        }                                                                                                              \
    }

#define EW_ROW2(name, TO, T, F, C, LD, ST)                                                                             \
    EM_HOT_MATH                                                                                                        \
    static void name(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f) {                 \
        TO *restrict o = out;                                                                                          \
        const T *restrict a = in[0], *restrict b = in[1];                                                              \
        const int64_t sa = s[0], sb = s[1];                                                                            \
        if (sa == 1 && sb == 1) {                                                                                      \
            EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = ST(F(LD(a[i]), LD(b[i]), f));                               \
        } else if (sa == 1 && sb == 0) {                                                                               \
            const C y = LD(b[0]);                                                                                      \
            EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = ST(F(LD(a[i]), y, f));                                      \
        } else if (sa == 0 && sb == 1) {                                                                               \
            const C x = LD(a[0]);                                                                                      \
            EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = ST(F(x, LD(b[i]), f));                                      \
        } else {                                                                                                       \
            for (int64_t i = 0; i < n; i++) o[i] = ST(F(LD(a[i * sa]), LD(b[i * sb]), f));                             \
        }                                                                                                              \
    }

/* cond (bool) picks a or b; a scalar a or b (stride 0) keeps the loop
 * vectorized. Both sides are loaded unconditionally so the select vectorizes
 * (a blend, no branch). */
#define EW_ROW3(name, TO, T, F, C, LD, ST)                                                                             \
    EM_HOT_MATH                                                                                                        \
    static void name(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f) {                 \
        TO *restrict o = out;                                                                                          \
        const uint8_t *restrict k = in[0];                                                                             \
        const T *restrict a = in[1], *restrict b = in[2];                                                              \
        const int64_t sk = s[0], sa = s[1], sb = s[2];                                                                 \
        (void)f;                                                                                                       \
        if (sk == 1 && sa == 1 && sb == 1) {                                                                           \
            EW_SIMD for (int64_t i = 0; i < n; i++) {                                                                  \
                const C x = LD(a[i]), y = LD(b[i]);                                                                    \
                o[i] = ST(F(k[i], x, y));                                                                              \
            }                                                                                                          \
        } else if (sk == 1 && sa == 1 && sb == 0) {                                                                    \
            const C y = LD(b[0]);                                                                                      \
            EW_SIMD for (int64_t i = 0; i < n; i++) {                                                                  \
                const C x = LD(a[i]);                                                                                  \
                o[i] = ST(F(k[i], x, y));                                                                              \
            }                                                                                                          \
        } else if (sk == 1 && sa == 0 && sb == 1) {                                                                    \
            const C x = LD(a[0]);                                                                                      \
            EW_SIMD for (int64_t i = 0; i < n; i++) {                                                                  \
                const C y = LD(b[i]);                                                                                  \
                o[i] = ST(F(k[i], x, y));                                                                              \
            }                                                                                                          \
        } else {                                                                                                       \
            for (int64_t i = 0; i < n; i++) o[i] = ST(F(k[i * sk], LD(a[i * sa]), LD(b[i * sb])));                     \
        }                                                                                                              \
    }

/* ---- the shared shape rule and kernel driver ---- */

static int unsupported(const em_call *c, const ew_row_fn *rows, const em_tensor *x) {
    char ok[160], b[160];
    size_t at = 0;
    ok[0] = '\0';
    for (int d = 0; d < EM_DTYPE_COUNT; d++)
        if (rows[d] && at < sizeof ok)
            at += (size_t)snprintf(ok + at, sizeof ok - at, "%s%s", at ? ", " : "", em_dtype_name((em_dtype)d));
    return em__op_error(c, "dtype %s (input of shape %s) is not supported; expected %s",
                        em_dtype_name((em_dtype)x->dtype), em__tshape(x, b, sizeof b), ok);
}

/* Unary, binary and where (cond, a, b): the value inputs share one dtype that
 * `rows` accepts; the shapes broadcast. */
static int ew_infer(const em_call *c, const ew_row_fn *rows, bool to_bool, em_dtype *dtype, int *ndim, int64_t *shape) {
    char b1[160], b2[160];
    const em_tensor *x = c->in[c->n - 1];
    if (c->n == 3 && c->in[0]->dtype != EM_BOOL)
        return em__op_error(c, "cond must be bool, got %s %s", em_dtype_name((em_dtype)c->in[0]->dtype),
                            em__tshape(c->in[0], b1, sizeof b1));
    if (c->n >= 2 && c->in[c->n - 2]->dtype != x->dtype) {
        const em_tensor *w = c->in[c->n - 2];
        return em__op_error(c, "dtypes differ: %s %s vs %s %s (convert one with em_cast)",
                            em_dtype_name((em_dtype)w->dtype), em__tshape(w, b1, sizeof b1),
                            em_dtype_name((em_dtype)x->dtype), em__tshape(x, b2, sizeof b2));
    }
    if (!rows[x->dtype]) return unsupported(c, rows, x);
    *dtype = to_bool ? EM_BOOL : (em_dtype)x->dtype;
    return em__broadcast_shapes(c, ndim, shape);
}

typedef struct ew_job {
    em_bcast p;
    ew_row_fn row;
    char *out;
    const char *in[EM_BCAST_MAX_IN];
    int64_t osize, isize[EM_BCAST_MAX_IN];
    double f[4];
} ew_job;

/* Output elements [begin, end): one row call per run of the innermost axis. */
static void ew_range(void *ctx, int64_t begin, int64_t end) {
    const ew_job *j = ctx;
    const em_bcast *p = &j->p;
    const int last = p->ndim - 1;
    int64_t idx[EM_MAX_DIMS], off[EM_BCAST_MAX_IN], s[EM_BCAST_MAX_IN];
    for (int k = 0; k < p->nin; k++) s[k] = p->strides[k][last];
    em_bcast_locate(p, begin, idx, off);
    for (int64_t pos = begin; pos < end;) {
        int64_t n = p->shape[last] - idx[last];
        if (n > end - pos) n = end - pos;
        const void *in[EM_BCAST_MAX_IN];
        for (int k = 0; k < p->nin; k++) in[k] = j->in[k] + off[k] * j->isize[k];
        j->row(j->out + pos * j->osize, in, s, n, j->f);
        pos += n;
        em_bcast_advance(p, n, idx, off);
    }
}

static void ew_run(const em_call *c, em_tensor *out, ew_row_fn row) {
    ew_job j; /* fields set one by one: zeroing the whole job costs more than a small op */
    j.row = row;
    j.out = out->data;
    j.osize = (int64_t)em_dtype_size((em_dtype)out->dtype);
    memcpy(j.f, c->a->f, sizeof j.f);
    em_bcast_init(&j.p, out->ndim, out->shape, c->n);
    for (int k = 0; k < c->n; k++) {
        const em_tensor *t = c->in[k];
        em_bcast_input(&j.p, k, t->ndim, t->shape, t->strides);
        j.in[k] = t->data;
        j.isize[k] = (int64_t)em_dtype_size((em_dtype)t->dtype);
    }
    em_bcast_coalesce(&j.p);
    em__parallel_for(out->numel, EW_GRAIN, ew_range, &j);
}

/* A run of float16 (or any narrow dtype d) through `wide`, the op's float32 row: value inputs widened a tile at a time (a
 * broadcast scalar once, keeping the float32 row's scalar loop), where's bool condition read in place, a
 * float output rounded back to d and a bool one written directly. */
static void ew_narrow_row(em_dtype d, ew_row_fn wide, int arity, bool to_bool, void *out, const void *const *in,
                          const int64_t *s, int64_t n, const double *f) {
    float tile[3][EM_NARROW_TILE], res[EM_NARROW_TILE];
    const int first = arity == 3; /* where (cond, a, b) */
    const void *win[3];
    int64_t ws[3];
    for (int k = first; k < arity; k++) {
        win[k] = tile[k];
        ws[k] = s[k] != 0;
        if (!s[k]) em__narrow_widen(d, in[k], 1, tile[k], 1);
    }
    for (int64_t i = 0; i < n; i += EM_NARROW_TILE) {
        const int64_t m = n - i < EM_NARROW_TILE ? n - i : EM_NARROW_TILE;
        if (first) {
            win[0] = (const uint8_t *)in[0] + i * s[0];
            ws[0] = s[0];
        }
        for (int k = first; k < arity; k++)
            if (s[k]) em__narrow_widen(d, (const uint16_t *)in[k] + i * s[k], s[k], tile[k], m);
        if (to_bool) {
            wide((uint8_t *)out + i, win, ws, m, f);
        } else {
            wide(res, win, ws, m, f);
            em__narrow_round(d, res, (uint16_t *)out + i, 1, m);
        }
    }
}

/* ---- each line of elementwise.def: its rows, shape rule and kernel ---- */

#define EW_TO_BOOL_SAME false
#define EW_TO_BOOL_BOOL true
#define EW_ROW(E, sfx, T, U, C, MN, MX, name, arity, OUT)                                                              \
    EW_ROW##arity(row_##name##_##sfx, EM_EW_OUT_##OUT(T), T, em_ew_##name##_##sfx, T, EW_ID, EW_ID)
/* bfloat16 rows widen their inputs and round their outputs in the formula's own loop (a shift, and the
 * rounding's integer add), one pass; built for x86-64-v4 the math functions' loops vectorize with the
 * rounding inside too (relu at 2.0x float32's speed from memory, gelu_tanh as fast as through a float32
 * tile). Bool outputs are written directly. float16 rows (whose software widening does not vectorize) go through ew_narrow_row's tiles,
 * converted by F16C or AVX-512 where the CPU has them. */
#define EW_NARROW_ROW(E, sfx, T, U, C, MN, MX, name, arity, OUT, dtypes) EW_NARROW_ROW_##sfx(E, name, arity, OUT, dtypes)
#define EW_NARROW_ROW_bf16(E, name, arity, OUT, dtypes) EW_BF16_ROW_##dtypes(name, arity, OUT)
#define EW_BF16_OUT_SAME uint16_t
#define EW_BF16_OUT_BOOL uint8_t
#define EW_BF16_STORE_SAME em_bf16_from_f32
#define EW_BF16_STORE_BOOL EW_ID
#define EW_BF16_ROW_NUMERIC_NARROW(name, arity, OUT)                                                                   \
    EW_ROW##arity(row_##name##_bf16, EW_BF16_OUT_##OUT, uint16_t, em_ew_##name##_f32, float, em_bf16_to_f32,           \
                  EW_BF16_STORE_##OUT)
#define EW_BF16_ROW_EVERY EW_BF16_ROW_NUMERIC_NARROW
#define EW_BF16_ROW_FLOATS_NARROW EW_BF16_ROW_NUMERIC_NARROW
#define EW_NARROW_ROW_f16(E, name, arity, OUT, dtypes) EW_NARROW_ROW_TILES(E, name, arity, OUT)
#define EW_NARROW_ROW_TILES(E, name, arity, OUT)                                                                       \
    static void row_##name##_f16(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f) {     \
        ew_narrow_row(E, row_##name##_f32, arity, EW_TO_BOOL_##OUT, out, in, s, n, f);                                 \
    }
#define EW_ROW_ENTRY(E, sfx, T, U, C, MN, MX, name, ...) [E] = row_##name##_##sfx,
#define EW_KERNELS(name, arity, dtypes, OUT)                                                                           \
    EM_WIDE_##dtypes(EW_ROW, name, arity, OUT)                                                                         \
    EM_NARROWS_##dtypes(EW_NARROW_ROW, name, arity, OUT, dtypes)                                                       \
    static const ew_row_fn rows_##name[EM_DTYPE_COUNT] = {EM_WIDE_##dtypes(EW_ROW_ENTRY, name)                         \
                                                              EM_NARROWS_##dtypes(EW_ROW_ENTRY, name)};                \
    static int infer_##name(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {                            \
        return ew_infer(c, rows_##name, EW_TO_BOOL_##OUT, dtype, ndim, shape);                                         \
    }                                                                                                                  \
    static void cpu_##name(const em_call *c, em_tensor *out) { ew_run(c, out, rows_##name[c->in[c->n - 1]->dtype]); }
#define EW_KERNELS_SAME(name, arity, dtypes) EW_KERNELS(name, arity, dtypes, SAME)
#define EW_KERNELS_BOOL(name, arity, dtypes) EW_KERNELS(name, arity, dtypes, BOOL)
#define EW_KERNELS_CAST(name, arity, dtypes) /* below */
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost, out, api, fn) EW_KERNELS_##out(name, arity, dtypes)
#include "elementwise.def"
#undef EM_OP

/* Cast rows for every (source, target) pair. The preprocessor does not
 * re-enter a macro inside its own expansion, so the source loop is spelled out. */
#define EW_CAST_ROW(E, sfx, T, U, C, MN, MX, ssfx, S)                                                                  \
    EW_ROW1(row_cast_##ssfx##_##sfx, T, S, em_ew_cast_##ssfx##_##sfx, S, EW_ID, EW_ID)
#define EW_CAST_ENTRY(E, sfx, T, U, C, MN, MX, ssfx) [E] = row_cast_##ssfx##_##sfx,
EM_FOR_EVERY(EW_CAST_ROW, f32, float)
EM_FOR_EVERY(EW_CAST_ROW, f64, double)
EM_FOR_EVERY(EW_CAST_ROW, i32, int32_t)
EM_FOR_EVERY(EW_CAST_ROW, i64, int64_t)
EM_FOR_EVERY(EW_CAST_ROW, u8, uint8_t)
EM_FOR_EVERY(EW_CAST_ROW, i8, int8_t)
EM_FOR_EVERY(EW_CAST_ROW, i16, int16_t)
EM_FOR_EVERY(EW_CAST_ROW, u16, uint16_t)
EM_FOR_EVERY(EW_CAST_ROW, b8, uint8_t)
EM_FOR_EVERY(EW_CAST_ROW, bf16, uint16_t)
EM_FOR_EVERY(EW_CAST_ROW, f16, uint16_t)
static const ew_row_fn cast_rows[EM_DTYPE_COUNT][EM_DTYPE_COUNT] = {
    [EM_F32] = {EM_FOR_EVERY(EW_CAST_ENTRY, f32)},   [EM_F64] = {EM_FOR_EVERY(EW_CAST_ENTRY, f64)},
    [EM_I32] = {EM_FOR_EVERY(EW_CAST_ENTRY, i32)},   [EM_I64] = {EM_FOR_EVERY(EW_CAST_ENTRY, i64)},
    [EM_U8] = {EM_FOR_EVERY(EW_CAST_ENTRY, u8)},     [EM_BOOL] = {EM_FOR_EVERY(EW_CAST_ENTRY, b8)},
    [EM_BF16] = {EM_FOR_EVERY(EW_CAST_ENTRY, bf16)}, [EM_F16] = {EM_FOR_EVERY(EW_CAST_ENTRY, f16)},
    [EM_I8] = {EM_FOR_EVERY(EW_CAST_ENTRY, i8)},     [EM_I16] = {EM_FOR_EVERY(EW_CAST_ENTRY, i16)},
    [EM_U16] = {EM_FOR_EVERY(EW_CAST_ENTRY, u16)},
};

static int infer_cast(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (c->a->dtype < 0 || c->a->dtype >= EM_DTYPE_COUNT)
        return em__op_error(c, "invalid target dtype %d", c->a->dtype);
    *dtype = (em_dtype)c->a->dtype;
    return em__broadcast_shapes(c, ndim, shape);
}

static void cpu_cast(const em_call *c, em_tensor *out) { ew_run(c, out, cast_rows[c->in[0]->dtype][out->dtype]); }

/* ---- gradient rules (public ops only) ---- */

/* A scalar of x's dtype: broadcasts against anything. */
static em_tensor *K(const em_tensor *x, double v) { return em_scalar((em_dtype)x->dtype, v); }

/* g summed back over the axes along which x was broadcast. */
static em_tensor *unbroadcast(em_tensor *g, const em_tensor *x) { return em__sum_to_shape(g, x->ndim, x->shape); }

#define UNARY_GRAD(op, expr)                                                                                           \
    static int grad_##op(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {          \
        em_tensor *x = c->in[0];                                                                                       \
        (void)out, (void)x, (void)g, (void)need;                                                                       \
        gin[0] = (expr);                                                                                               \
        return gin[0] ? 0 : -1;                                                                                        \
    }

/* Binary rules: ga and gb have the broadcast output's shape, then are summed
 * down to each input's shape; only the needed ones are built. */
#define BINARY_GRAD(op, ga, gb)                                                                                        \
    static int grad_##op(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {          \
        em_tensor *a = c->in[0], *b = c->in[1];                                                                        \
        (void)out;                                                                                                     \
        if (need[0] && !(gin[0] = unbroadcast((ga), a))) return -1;                                                    \
        if (need[1] && !(gin[1] = unbroadcast((gb), b))) return -1;                                                    \
        return 0;                                                                                                      \
    }

/* log(a) where a > 0 and 0 elsewhere, without evaluating log at a <= 0. */
static em_tensor *log_positive(em_tensor *a) {
    em_tensor *pos = em_greater(a, K(a, 0));
    return em_where(pos, em_log(em_where(pos, a, K(a, 1))), K(a, 0));
}

/* d gelu/dx = Phi(x) + x phi(x): the standard normal cdf and density. */
static em_tensor *gelu_slope(em_tensor *x) {
    em_tensor *cdf = em_add_scalar(em_mul_scalar(em_erf(em_mul_scalar(x, EM_EW_SQRT1_2)), 0.5), 0.5);
    em_tensor *pdf = em_mul_scalar(em_exp(em_mul_scalar(em_square(x), -0.5)), EM_EW_1_SQRT2PI);
    return em_add(cdf, em_mul(x, pdf));
}

BINARY_GRAD(add, g, g)
BINARY_GRAD(sub, g, em_neg(g))
BINARY_GRAD(mul, em_mul(g, b), em_mul(g, a))
BINARY_GRAD(div, em_div(g, b), em_neg(em_div(em_mul(g, out), b)))
BINARY_GRAD(pow, em_mul(g, em_mul(b, em_pow(a, em_add_scalar(b, -1)))), em_mul(g, em_mul(out, log_positive(a))))
/* Ties send the gradient to a. */
BINARY_GRAD(maximum, em_where(em_greater_equal(a, b), g, K(g, 0)), em_where(em_greater_equal(a, b), K(g, 0), g))
BINARY_GRAD(minimum, em_where(em_less_equal(a, b), g, K(g, 0)), em_where(em_less_equal(a, b), K(g, 0), g))

UNARY_GRAD(neg, em_neg(g))
UNARY_GRAD(abs, em_mul(g, em_sign(x)))
UNARY_GRAD(square, em_mul(g, em_mul_scalar(x, 2)))
UNARY_GRAD(sign, em_fill_like(x, 0))
UNARY_GRAD(sqrt, em_div(g, em_mul_scalar(out, 2)))
UNARY_GRAD(rsqrt, em_mul(g, em_mul_scalar(em_mul(out, em_square(out)), -0.5)))
UNARY_GRAD(exp, em_mul(g, out))
UNARY_GRAD(log, em_div(g, x))
UNARY_GRAD(log1p, em_div(g, em_add_scalar(x, 1)))
UNARY_GRAD(erf, em_mul(g, em_mul_scalar(em_exp(em_neg(em_square(x))), EM_EW_2_SQRTPI)))
UNARY_GRAD(sin, em_mul(g, em_cos(x)))
UNARY_GRAD(cos, em_neg(em_mul(g, em_sin(x))))
UNARY_GRAD(tan, em_mul(g, em_add_scalar(em_square(out), 1)))
/* TF's: d/da = 1, d/db = -floor(a / b). */
BINARY_GRAD(floormod, g, em_neg(em_mul(g, em_floor(em_div(a, b)))))
UNARY_GRAD(reciprocal, em_neg(em_mul(g, em_square(out))))
/* relu_grad(x, g) is linear in g and flat in x: its own gradient goes to g alone. */
static em_tensor *relu_grad(em_tensor *x, em_tensor *g) {
    return em__apply(EM_OP_RELU_GRAD, 2, (em_tensor *[]){x, g}, &(em_attrs){0});
}
static int grad_relu_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    if (need[1] && !(gin[1] = unbroadcast(relu_grad(c->in[0], g), c->in[1]))) return -1;
    return 0;
}
UNARY_GRAD(relu, relu_grad(x, g))
UNARY_GRAD(leaky_relu, em_where(em_greater(x, K(x, 0)), g, em_mul_scalar(g, c->a->f[0])))
UNARY_GRAD(elu, em_where(em_greater(x, K(x, 0)), g, em_mul(g, em_exp(x))))
/* sigmoid and tanh differentiate through their outputs, in one pass each:
 * sigmoid_grad(y, g) = g y (1 - y), whose own gradients are G g (1 - 2y) for
 * y and sigmoid_grad(y, G) for g; tanh_grad(y, g) = g (1 - y^2), with
 * -2 G g y and tanh_grad(y, G). */
static em_tensor *output_grad(em_op op, em_tensor *y, em_tensor *g) {
    return em__apply(op, 2, (em_tensor *[]){y, g}, &(em_attrs){0});
}
static int grad_sigmoid_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    em_tensor *y = c->in[0], *dy = c->in[1];
    (void)out;
    if (need[0] && !(gin[0] = unbroadcast(em_mul(em_mul(g, dy), em_add_scalar(em_mul_scalar(y, -2), 1)), y)))
        return -1;
    if (need[1] && !(gin[1] = unbroadcast(output_grad(EM_OP_SIGMOID_GRAD, y, g), dy))) return -1;
    return 0;
}
static int grad_tanh_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    em_tensor *y = c->in[0], *dy = c->in[1];
    (void)out;
    if (need[0] && !(gin[0] = unbroadcast(em_mul(em_mul(g, dy), em_mul_scalar(y, -2)), y))) return -1;
    if (need[1] && !(gin[1] = unbroadcast(output_grad(EM_OP_TANH_GRAD, y, g), dy))) return -1;
    return 0;
}
UNARY_GRAD(sigmoid, output_grad(EM_OP_SIGMOID_GRAD, out, g))
UNARY_GRAD(tanh, output_grad(EM_OP_TANH_GRAD, out, g))
UNARY_GRAD(softplus, em_mul(g, em_sigmoid(x)))
/* Slope 0.2 where the clip passes, |x| <= 2.5 with the bounds included (TF's clip_by_value). */
UNARY_GRAD(hard_sigmoid, em_where(em_less_equal(em_abs(x), K(x, 2.5)), em_mul_scalar(g, 0.2), K(x, 0)))
UNARY_GRAD(log_sigmoid, em_mul(g, em_sigmoid(em_neg(x))))
UNARY_GRAD(gelu, em_mul(g, gelu_slope(x)))
/* d silu/dx = s (1 + x (1 - s)) with s = sigmoid(x). */
static em_tensor *silu_slope(em_tensor *x) {
    em_tensor *s = em_sigmoid(x);
    return em_mul(s, em_add_scalar(em_mul(x, em_add_scalar(em_neg(s), 1)), 1));
}
UNARY_GRAD(silu, em_mul(g, silu_slope(x)))
/* gelu_tanh_grad(x, g) = g f'(x) is linear in g: d/dg = gelu_tanh_grad(x, G); d/dx = G g f''(x). With
 * v = 2k (x + a x^3) (elementwise_math.h), s = sigmoid(v) and q = s sigmoid(-v):
 * f' = s + x q v', so f'' = q (2 v' + x (1 - 2s) v'^2 + 12 k a x^2). */
static em_tensor *gelu_tanh_grad(em_tensor *x, em_tensor *g) {
    return em__apply(EM_OP_GELU_TANH_GRAD, 2, (em_tensor *[]){x, g}, &(em_attrs){0});
}
static em_tensor *gelu_tanh_curvature(em_tensor *x) {
    const double k = EM_EW_GELU_TANH_K, a = EM_EW_GELU_TANH_A;
    em_tensor *x2 = em_square(x);
    em_tensor *v = em_mul_scalar(em_add(x, em_mul_scalar(em_mul(x2, x), a)), 2 * k);
    em_tensor *s = em_sigmoid(v), *q = em_mul(s, em_sigmoid(em_neg(v)));
    em_tensor *dv = em_add_scalar(em_mul_scalar(x2, 6 * a * k), 2 * k);
    em_tensor *bend = em_mul(em_mul(x, em_add_scalar(em_mul_scalar(s, -2), 1)), em_square(dv));
    return em_mul(q, em_add(em_add(em_mul_scalar(dv, 2), bend), em_mul_scalar(x2, 12 * k * a)));
}
static int grad_gelu_tanh_grad(const em_call *c, em_tensor *out, em_tensor *G, const bool *need, em_tensor **gin) {
    em_tensor *x = c->in[0], *g = c->in[1];
    (void)out;
    if (need[0] && !(gin[0] = unbroadcast(em_mul(em_mul(G, g), gelu_tanh_curvature(x)), x))) return -1;
    if (need[1] && !(gin[1] = unbroadcast(gelu_tanh_grad(x, G), g))) return -1;
    return 0;
}
UNARY_GRAD(gelu_tanh, gelu_tanh_grad(x, g))
UNARY_GRAD(clip, em_where(em_logical_and(em_greater_equal(x, K(x, c->a->f[0])), em_less_equal(x, K(x, c->a->f[1]))), g,
                          K(x, 0)))

static int grad_where(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    em_tensor *cond = c->in[0];
    (void)out;
    if (need[1] && !(gin[1] = unbroadcast(em_where(cond, g, K(g, 0)), c->in[1]))) return -1;
    if (need[2] && !(gin[2] = unbroadcast(em_where(cond, K(g, 0), g), c->in[2]))) return -1;
    return 0;
}

/* Only float-to-float casts carry a gradient (cast back); others leave gin NULL. */
static int grad_cast(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    em_tensor *x = c->in[0];
    if (!need[0] || !em__is_float((em_dtype)x->dtype) || !em__is_float((em_dtype)out->dtype)) return 0;
    gin[0] = em_cast(g, (em_dtype)x->dtype);
    return gin[0] ? 0 : -1;
}

/* ---- the rows and the plain public functions ---- */

#define EW_PUBLIC_1(fn, ID)                                                                                            \
    em_tensor *fn(em_tensor *x) { return em__apply(EM_OP_##ID, 1, &x, &(em_attrs){0}); }
#define EW_PUBLIC_2(fn, ID)                                                                                            \
    em_tensor *fn(em_tensor *a, em_tensor *b) { return em__apply(EM_OP_##ID, 2, (em_tensor *[]){a, b}, &(em_attrs){0}); }
#define EW_PUBLIC_3(fn, ID)                                                                                            \
    em_tensor *fn(em_tensor *cond, em_tensor *a, em_tensor *b) {                                                       \
        return em__apply(EM_OP_##ID, 3, (em_tensor *[]){cond, a, b}, &(em_attrs){0});                                  \
    }
#define EW_API_PLAIN(fn, ID, arity) EW_PUBLIC_##arity(fn, ID)
#define EW_API_OWN(fn, ID, arity)
#define EW_API_INTERNAL(fn, ID, arity)
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost, out, api, fn)                                        \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, infer_##name, cpu_##name, NULL, grad_##name)         \
    EW_API_##api(fn, ID, arity)
#include "elementwise.def"
#undef EM_OP

/* ---- the public functions with attributes ---- */

static em_tensor *unary(em_op op, em_tensor *x, const em_attrs *a) { return em__apply(op, 1, &x, a); }

em_tensor *em_leaky_relu(em_tensor *x, double alpha) { return unary(EM_OP_LEAKY_RELU, x, &(em_attrs){.f = {alpha}}); }

em_tensor *em_clip_by_value(em_tensor *x, double lo, double hi) {
    if (x && !(lo <= hi)) {
        em__error("clip: bounds must satisfy lo <= hi, got lo=%g hi=%g", lo, hi);
        return NULL;
    }
    return unary(EM_OP_CLIP, x, &(em_attrs){.f = {lo, hi}});
}

em_tensor *em_cast(em_tensor *x, em_dtype dtype) { return unary(EM_OP_CAST, x, &(em_attrs){.dtype = (int)dtype}); }

em_tensor *em_add_scalar(em_tensor *x, double s) {
    if (!x) return em__null_input("add_scalar");
    return em_add(x, em_scalar((em_dtype)x->dtype, s));
}

em_tensor *em_mul_scalar(em_tensor *x, double s) {
    if (!x) return em__null_input("mul_scalar");
    return em_mul(x, em_scalar((em_dtype)x->dtype, s));
}
