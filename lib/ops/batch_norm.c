/* Batch norm in training mode over every axis but the last (NHWC: per
 * channel), float32 and float64; the formulas are batch_norm_math.h's, which
 * gpu/batch_norm.cu calls too. The op layout is layer norm's (lib/ops/norm.c):
 *   batch_norm (x, scale, offset) writes [y | mean | rstd | var] (its
 *     gradient cut); batch_norm_y (buffer, x, scale, offset) is y, a view of
 *     the buffer's front, whose gradient rule runs batch_norm_grad
 *     (x, buffer, scale, dy) -> [dscale | doffset | dx], whose own gradient rule is layer norm's backward
 *     op's (em__norm_backward_grad, nn.c) with the channels as the groups.
 * The per-channel sums run over fixed blocks of rows (their number depends
 * only on the shape) into double partial sums, added in block order: the
 * results do not depend on the thread count. Within a block the loop runs
 * along the channels, contiguous in NHWC, so it vectorizes.
 * Attributes: f[0] eps. The moving averages and inference mode are
 * em_fused_batch_norm's (lib/batch_norm.c, with the variables). */
#include "../internal.h"
#include "batch_norm_math.h"
#include "nn.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>

#define BLOCKS_MAX 64      /* row blocks of the per-channel sums ... */
#define BLOCK_MIN_ROWS 32  /* ... of at least this many rows */

static int64_t channels(const em_tensor *x) { return x->shape[x->ndim - 1]; }
static int64_t rows_of(const em_tensor *x) { return channels(x) ? x->numel / channels(x) : 0; }
static int64_t fwd_size(const em_tensor *x) { return x->numel + 3 * channels(x); }
static int64_t bwd_size(const em_tensor *x) { return x->numel + 2 * channels(x); }

/* ---- shape rules ---- */

/* x float with at least one dimension; in[at], in[at + 1] (scale, offset) [C] of its dtype (offset checked
 * when with_offset). */
static int check_params(const em_call *c, const em_tensor *x, int at, bool with_offset) {
    char b1[160], b2[160];
    if (!em__is_float((em_dtype)x->dtype))
        return em__op_error(c, "x has dtype %s; float32 or float64 is required", em_dtype_name((em_dtype)x->dtype));
    if (x->ndim < 1) return em__op_error(c, "x must have at least 1 dimension (the channels), got a scalar");
    const char *names[2] = {"scale", "offset"};
    for (int k = 0; k < (with_offset ? 2 : 1); k++) {
        const em_tensor *p = c->in[at + k];
        if (p->dtype != x->dtype)
            return em__op_error(c, "%s has dtype %s but x has %s", names[k], em_dtype_name((em_dtype)p->dtype),
                                em_dtype_name((em_dtype)x->dtype));
        if (p->ndim != 1 || p->shape[0] != channels(x))
            return em__op_error(c, "%s %s must be [%" PRId64 "], the last dimension (channels) of x %s", names[k],
                                em__tshape(p, b1, sizeof b1), channels(x), em__tshape(x, b2, sizeof b2));
    }
    if (!(c->a->f[0] >= 0) || c->a->f[0] == INFINITY)
        return em__op_error(c, "eps must be finite and at least 0, got %g", c->a->f[0]);
    return 0;
}

static int batch_norm_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    if (check_params(c, x, 1, true)) return -1;
    *dtype = (em_dtype)x->dtype;
    *ndim = 1;
    shape[0] = fwd_size(x);
    return 0;
}

static int check_buffer(const em_call *c, int at, const em_tensor *x) {
    const em_tensor *buf = c->in[at];
    char b1[160], b2[160];
    if (buf->dtype != x->dtype || buf->ndim != 1 || buf->shape[0] != fwd_size(x))
        return em__op_error(c, "the forward buffer %s %s is not the one of x %s %s", em_dtype_name((em_dtype)buf->dtype),
                            em__tshape(buf, b1, sizeof b1), em_dtype_name((em_dtype)x->dtype),
                            em__tshape(x, b2, sizeof b2));
    return 0;
}

static int batch_norm_y_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[1];
    if (check_params(c, x, 2, true) || check_buffer(c, 0, x)) return -1;
    *dtype = (em_dtype)x->dtype;
    *ndim = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return 0;
}

static int batch_norm_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0], *dy = c->in[3];
    char b1[160], b2[160];
    if (check_params(c, x, 2, false) || check_buffer(c, 1, x)) return -1;
    if (dy->dtype != x->dtype || !em_shape_equal(em__shape_of(dy), em__shape_of(x)))
        return em__op_error(c, "dy %s %s must have x's dtype and shape %s %s", em_dtype_name((em_dtype)dy->dtype),
                            em__tshape(dy, b1, sizeof b1), em_dtype_name((em_dtype)x->dtype),
                            em__tshape(x, b2, sizeof b2));
    *dtype = (em_dtype)x->dtype;
    *ndim = 1;
    shape[0] = bwd_size(x);
    return 0;
}

/* ---- CPU kernels ---- */

typedef struct {
    const void *x, *dy, *scale, *offset;
    void *out;
    const double *mean, *rstd; /* per channel, while the second pass runs */
    double *parts;             /* [blocks][2 C] partial sums */
    int64_t rows, c, block_rows;
    int pass; /* forward: 0 sums x, 1 sums (x - mean)^2, 2 writes y; backward: 0 sums dy and dy xh, 1 writes dx */
    double inv_rows;
    const double *dscale, *doffset;
} bn_ctx;

#define BN_KERNELS(T)                                                                                                  \
    static void bn_fwd_##T(void *p, int64_t begin, int64_t end) {                                                      \
        const bn_ctx *k = p;                                                                                           \
        const T *x = k->x, *scale = k->scale, *offset = k->offset;                                                     \
        T *y = k->out;                                                                                                 \
        const int64_t C = k->c;                                                                                        \
        for (int64_t b = begin; b < end; b++) {                                                                        \
            int64_t r0 = b * k->block_rows, r1 = r0 + k->block_rows < k->rows ? r0 + k->block_rows : k->rows;          \
            double *acc = k->parts + b * 2 * C;                                                                        \
            if (k->pass < 2)                                                                                           \
                for (int64_t j = 0; j < C; j++) acc[j] = 0;                                                            \
            for (int64_t r = r0; r < r1; r++) {                                                                        \
                const T *xr = x + r * C;                                                                               \
                if (k->pass == 0) {                                                                                    \
                    for (int64_t j = 0; j < C; j++) acc[j] += xr[j];                                                   \
                } else if (k->pass == 1) {                                                                             \
                    for (int64_t j = 0; j < C; j++) {                                                                  \
                        double d = xr[j] - k->mean[j];                                                                 \
                        acc[j] += d * d;                                                                               \
                    }                                                                                                  \
                } else {                                                                                               \
                    T *yr = y + r * C;                                                                                 \
                    for (int64_t j = 0; j < C; j++)                                                                    \
                        yr[j] = (T)em_bn_y(xr[j], k->mean[j], k->rstd[j], scale[j], offset[j]);                        \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    static void bn_bwd_##T(void *p, int64_t begin, int64_t end) {                                                      \
        const bn_ctx *k = p;                                                                                           \
        const T *x = k->x, *dy = k->dy, *scale = k->scale;                                                             \
        const int64_t C = k->c;                                                                                        \
        T *dx = (T *)k->out + 2 * C;                                                                                   \
        for (int64_t b = begin; b < end; b++) {                                                                        \
            int64_t r0 = b * k->block_rows, r1 = r0 + k->block_rows < k->rows ? r0 + k->block_rows : k->rows;          \
            double *acc = k->parts + b * 2 * C;                                                                        \
            if (k->pass == 0)                                                                                          \
                for (int64_t j = 0; j < 2 * C; j++) acc[j] = 0;                                                        \
            for (int64_t r = r0; r < r1; r++) {                                                                        \
                const T *xr = x + r * C, *dyr = dy + r * C;                                                            \
                if (k->pass == 0) {                                                                                    \
                    for (int64_t j = 0; j < C; j++) {                                                                  \
                        acc[j] += dyr[j] * ((xr[j] - k->mean[j]) * k->rstd[j]);                                        \
                        acc[C + j] += dyr[j];                                                                          \
                    }                                                                                                  \
                } else {                                                                                               \
                    T *dxr = dx + r * C;                                                                               \
                    for (int64_t j = 0; j < C; j++)                                                                    \
                        dxr[j] = (T)em_bn_dx(xr[j], dyr[j], k->mean[j], k->rstd[j], scale[j], k->dscale[j],            \
                                             k->doffset[j], k->inv_rows);                                              \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }
BN_KERNELS(float)
BN_KERNELS(double)

/* The blocks of k's rows, and the partial sums' scratch (NULL after an error). */
static int64_t bn_blocks(bn_ctx *k) {
    int64_t blocks = (k->rows + BLOCK_MIN_ROWS - 1) / BLOCK_MIN_ROWS;
    if (blocks > BLOCKS_MAX) blocks = BLOCKS_MAX;
    if (blocks < 1) blocks = 1;
    k->block_rows = (k->rows + blocks - 1) / blocks;
    if (k->block_rows < 1) k->block_rows = 1;
    return blocks;
}

/* Adds the blocks' partial sums in order: into[j] = sum over blocks of parts[b][from + j]. */
static void add_blocks(const bn_ctx *k, int64_t blocks, int64_t from, double *into) {
    for (int64_t j = 0; j < k->c; j++) into[j] = 0;
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t j = 0; j < k->c; j++) into[j] += k->parts[b * 2 * k->c + from + j];
}

static void batch_norm_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    bool f32 = x->dtype == EM_F32;
    bn_ctx k = {.x = x->data, .scale = c->in[1]->data, .offset = c->in[2]->data, .out = out->data,
                .rows = rows_of(x), .c = channels(x)};
    if (k.c == 0) return;
    int64_t blocks = bn_blocks(&k), C = k.c;
    double *stats = malloc(sizeof(double) * (size_t)(2 * blocks * C + 3 * C));
    if (!stats) {
        em__error("batch_norm: out of memory for the per-channel sums of x [%" PRId64 " rows, %" PRId64 "]", k.rows, C);
        return;
    }
    k.parts = stats;
    double *mean = stats + 2 * blocks * C, *var = mean + C, *rstd = var + C;
    em_range_fn fwd = f32 ? bn_fwd_float : bn_fwd_double;
    double inv_rows = k.rows ? 1.0 / (double)k.rows : 0;
    k.pass = 0;
    em__parallel_for(blocks, 1, fwd, &k);
    add_blocks(&k, blocks, 0, mean);
    for (int64_t j = 0; j < C; j++) mean[j] *= inv_rows;
    k.mean = mean;
    k.pass = 1;
    em__parallel_for(blocks, 1, fwd, &k);
    add_blocks(&k, blocks, 0, var);
    for (int64_t j = 0; j < C; j++) {
        var[j] *= inv_rows;
        rstd[j] = em_bn_rstd(var[j], c->a->f[0]);
    }
    k.rstd = rstd;
    k.pass = 2;
    em__parallel_for(blocks, 1, fwd, &k);
    for (int64_t j = 0; j < C; j++) {
        if (f32) {
            float *s = (float *)out->data + x->numel;
            s[j] = (float)mean[j], s[C + j] = (float)rstd[j], s[2 * C + j] = (float)var[j];
        } else {
            double *s = (double *)out->data + x->numel;
            s[j] = mean[j], s[C + j] = rstd[j], s[2 * C + j] = var[j];
        }
    }
    free(stats);
}

static void batch_norm_grad_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0], *buf = c->in[1];
    bool f32 = x->dtype == EM_F32;
    bn_ctx k = {.x = x->data, .dy = c->in[3]->data, .scale = c->in[2]->data, .out = out->data, .rows = rows_of(x),
                .c = channels(x)};
    if (k.c == 0) return;
    int64_t blocks = bn_blocks(&k), C = k.c;
    double *stats = malloc(sizeof(double) * (size_t)(2 * blocks * C + 4 * C));
    if (!stats) {
        em__error("batch_norm_grad: out of memory for the per-channel sums of x [%" PRId64 " rows, %" PRId64 "]",
                  k.rows, C);
        return;
    }
    k.parts = stats;
    double *mean = stats + 2 * blocks * C, *rstd = mean + C, *dscale = rstd + C, *doffset = dscale + C;
    for (int64_t j = 0; j < C; j++) {
        mean[j] = f32 ? ((const float *)buf->data)[x->numel + j] : ((const double *)buf->data)[x->numel + j];
        rstd[j] = f32 ? ((const float *)buf->data)[x->numel + C + j] : ((const double *)buf->data)[x->numel + C + j];
    }
    k.mean = mean, k.rstd = rstd, k.inv_rows = k.rows ? 1.0 / (double)k.rows : 0;
    em_range_fn bwd = f32 ? bn_bwd_float : bn_bwd_double;
    k.pass = 0;
    em__parallel_for(blocks, 1, bwd, &k);
    add_blocks(&k, blocks, 0, dscale);
    add_blocks(&k, blocks, C, doffset);
    k.dscale = dscale, k.doffset = doffset;
    k.pass = 1;
    em__parallel_for(blocks, 1, bwd, &k);
    for (int64_t j = 0; j < C; j++) {
        if (f32) ((float *)out->data)[j] = (float)dscale[j], ((float *)out->data)[C + j] = (float)doffset[j];
        else ((double *)out->data)[j] = dscale[j], ((double *)out->data)[C + j] = doffset[j];
    }
    free(stats);
}

/* y: the buffer's first numel(x) elements in x's shape. */
static em_tensor *batch_norm_y_view(const em_call *c, int ndim, const int64_t *shape) {
    int64_t strides[EM_MAX_DIMS], step = c->in[0]->strides[0];
    for (int d = ndim - 1; d >= 0; d--) {
        strides[d] = step;
        step *= shape[d];
    }
    return em__view(c->in[0], ndim, shape, strides, 0);
}

/* ---- gradient rules ---- */

static em_tensor *part(em_tensor *buf, int64_t at, int64_t n, em_shape s) {
    return em_reshape(em_slice(buf, (int64_t[]){at}, (int64_t[]){n}), s);
}

static int batch_norm_y_grad(const em_call *c, em_tensor *out, em_tensor *dy, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *x = c->in[1];
    em_tensor *g = em__apply(EM_OP_BATCH_NORM_GRAD, 4, (em_tensor *[]){x, c->in[0], c->in[2], dy}, c->a);
    if (!g) return -1;
    int64_t C = channels(x);
    if (need[1] && !(gin[1] = part(g, 2 * C, -1, em__shape_of(x)))) return -1;
    if (need[2] && !(gin[2] = part(g, 0, C, EM_SHAPE(C)))) return -1;
    if (need[3] && !(gin[3] = part(g, C, C, EM_SHAPE(C)))) return -1;
    return 0;
}

/* The backward op's gradient: the normalizations' (nn.c) on x and dy as [rows, C], normalized over axis 0. */
static int batch_norm_grad_grad(const em_call *c, em_tensor *out, em_tensor *G, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *x = c->in[0], *g[4] = {NULL};
    em_shape rows_c = EM_SHAPE(-1, channels(x));
    em_tensor *x2 = em_reshape(x, rows_c), *dy2 = em_reshape(c->in[3], rows_c);
    if (!x2 || !dy2 || em__norm_backward_grad(x2, c->in[2], dy2, G, 0, true, c->a->f[0], need, g)) return -1;
    if (need[0] && !(gin[0] = em_reshape(g[0], em__shape_of(x)))) return -1;
    if (need[3] && !(gin[3] = em_reshape(g[3], em__shape_of(x)))) return -1;
    gin[2] = g[2];
    return 0;
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, name##_view, name##_grad)
#include "batch_norm.def"
#undef EM_OP

/* ---- public functions ---- */

int em__batch_norm_train(em_tensor *x, em_tensor *scale, em_tensor *offset, double eps, em_tensor **y,
                         em_tensor **mean, em_tensor **variance) {
    em_attrs a = {.f = {eps}};
    *y = *mean = *variance = NULL;
    em_tensor *buf = em__apply(EM_OP_BATCH_NORM, 3, (em_tensor *[]){x, scale, offset}, &a);
    if (!buf) return -1;
    int64_t C = channels(x), n = x->numel;
    *y = em__apply(EM_OP_BATCH_NORM_Y, 4, (em_tensor *[]){buf, x, scale, offset}, &a);
    *mean = part(buf, n, C, EM_SHAPE(C));
    *variance = part(buf, n + 2 * C, C, EM_SHAPE(C));
    return *y && *mean && *variance ? 0 : -1;
}

em_tensor *em_batch_normalization(em_tensor *x, em_tensor *mean, em_tensor *variance, em_tensor *offset,
                                  em_tensor *scale, double variance_epsilon) {
    if (!x || !mean || !variance) return em__null_input("batch_normalization");
    em_scope_begin();
    em_tensor *inv = em_rsqrt(em_add_scalar(variance, variance_epsilon));
    if (scale) inv = em_mul(inv, scale);
    em_tensor *y = em_mul(em_sub(x, mean), inv);
    if (offset) y = em_add(y, offset);
    y = em_escape(y);
    em_scope_end();
    return y;
}
