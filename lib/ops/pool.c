/* Max and average pooling (float32 and float64) and their gradients, over
 * NHWC inputs.
 *
 * Attributes (nn.h): i[0..1] strides {h, w}, i[2..3] ksize {h, w}, i[4]
 * padding (em_padding), i[5..8] the input's NHWC shape (avg_pool_grad).
 * Windows are clipped to the input (TF's padding rule, lib/conv_geometry.h):
 * SAME padding is never pooled.
 *
 * max_pool_relu_grad is a graph's fusion of max_pool_grad -> relu_grad where
 * the pool's input is the ReLU's output (lib/graph/optimize.c): each routed
 * gradient is kept where that input is positive as it is stored, so the
 * gradient does not make a second trip through memory. */
#include "../gpu.h"
#include "../internal.h"
#include "elementwise_math.h"
#include "nn.h"

#include <math.h>


static int pool_geom(const em_call *c, const int64_t *xs, em_conv_geom *g) {
    return em__nn_geom(c, xs, c->a->i[A_WINDOW], c->a->i[A_WINDOW + 1], xs[3], false, g);
}

static int pool_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_conv_geom g;
    if (em__nn_need_float(c, 0, "input") || em__nn_need_rank4(c, 0, "input") || pool_geom(c, c->in[0]->shape, &g))
        return -1;
    int64_t os[4] = {g.n, g.oh, g.ow, g.c};
    memcpy(shape, os, sizeof os);
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

/* Checks dy against the pooling output of input shape xs. */
static int pool_check_dy(const em_call *c, const int64_t *xs, const em_tensor *dy) {
    em_conv_geom g;
    char b0[160], b1[160];
    if (pool_geom(c, xs, &g)) return -1;
    int64_t os[4] = {g.n, g.oh, g.ow, g.c};
    if (dy->ndim != 4 || memcmp(dy->shape, os, sizeof os) != 0)
        return em__op_error(c, "out_backprop %s must have the pooling's output shape %s", em__tshape(dy, b0, sizeof b0),
                            em__nn_shape_str(4, os, b1, sizeof b1));
    return 0;
}

/* inputs (input, out_backprop). */
static int max_pool_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (em__nn_same_float(c, "input", "out_backprop") || em__nn_need_rank4(c, 0, "input") ||
        pool_check_dy(c, c->in[0]->shape, c->in[1]))
        return -1;
    memcpy(shape, c->in[0]->shape, sizeof(int64_t) * 4);
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

/* inputs (input, out_backprop), as max_pool_grad. */
static int max_pool_relu_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    return max_pool_grad_infer(c, dtype, ndim, shape);
}

/* inputs (out_backprop), i[5..8] the input shape. */
static int avg_pool_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (em__nn_need_float(c, 0, "out_backprop") || em__nn_attr_shape(c, "input", shape) ||
        pool_check_dy(c, shape, c->in[0]))
        return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

typedef struct {
    em_conv_geom g;
    const void *x, *dy;
    void *out;
    bool tiles; /* the windows cover the input without overlapping: gradients are stored, not added */
} pool_plan;

/* max_pool_relu_grad: relu_grad's formula on the routed gradient g of an input x. */
static inline float relu_grad_float(float x, float g) { return em_ew_relu_grad_f32(x, g, NULL); }
static inline double relu_grad_double(double x, double g) { return em_ew_relu_grad_f64(x, g, NULL); }

/* Forward pools: one task per output row (n, oy). */
#define POOL_FWD(T)                                                                           \
    EM_HOT static void max_pool_##T(void *ctx, int64_t begin, int64_t end) {                  \
        const pool_plan *p = ctx;                                                             \
        const em_conv_geom *g = &p->g;                                                        \
        const T *x = p->x;                                                                    \
        for (int64_t r = begin; r < end; r++)                                                 \
            for (int64_t ox = 0; ox < g->ow; ox++) {                                          \
                int64_t y0, y1, x0, x1, n = r / g->oh;                                        \
                em_pool_window(g, r % g->oh, ox, &y0, &y1, &x0, &x1);                         \
                T *y = (T *)p->out + (r * g->ow + ox) * g->c;                                 \
                for (int64_t ch = 0; ch < g->c; ch++) y[ch] = -INFINITY;                      \
                for (int64_t iy = y0; iy < y1; iy++)                                          \
                    for (int64_t ix = x0; ix < x1; ix++) {                                    \
                        const T *v = x + ((n * g->h + iy) * g->w + ix) * g->c;                \
                        _Pragma("omp simd") for (int64_t ch = 0; ch < g->c; ch++) y[ch] = v[ch] > y[ch] ? v[ch] : y[ch]; \
                    }                                                                         \
            }                                                                                 \
    }                                                                                         \
    EM_HOT static void avg_pool_##T(void *ctx, int64_t begin, int64_t end) {                  \
        const pool_plan *p = ctx;                                                             \
        const em_conv_geom *g = &p->g;                                                        \
        const T *x = p->x;                                                                    \
        for (int64_t r = begin; r < end; r++)                                                 \
            for (int64_t ox = 0; ox < g->ow; ox++) {                                          \
                int64_t y0, y1, x0, x1, n = r / g->oh;                                        \
                em_pool_window(g, r % g->oh, ox, &y0, &y1, &x0, &x1);                         \
                T *y = (T *)p->out + (r * g->ow + ox) * g->c, inv = (T)1 / (T)((y1 - y0) * (x1 - x0)); \
                for (int64_t ch = 0; ch < g->c; ch++) y[ch] = 0;                              \
                for (int64_t iy = y0; iy < y1; iy++)                                          \
                    for (int64_t ix = x0; ix < x1; ix++) {                                    \
                        const T *v = x + ((n * g->h + iy) * g->w + ix) * g->c;                \
                        _Pragma("omp simd") for (int64_t ch = 0; ch < g->c; ch++) y[ch] += v[ch];                 \
                    }                                                                         \
                for (int64_t ch = 0; ch < g->c; ch++) y[ch] *= inv;                           \
            }                                                                                 \
    }
POOL_FWD(float)
POOL_FWD(double)

/* Pool gradients: one task per image (windows overlap only within an image).
 * Whole 2x2 windows that tile the input (the usual 2x2 stride-2 pool) take
 * one pass over the channels, with the same routing.
 * max_pool_grad routes each dy to the first element of its window not less
 * than the window's maximum (the first largest; with NaNs, the first NaN that
 * precedes it), in blocks of POOL_BLOCK channels: the maximum, then a scan
 * that hands dy to the first match, both branch-free over channels. */
enum { POOL_BLOCK = 64 };
/* Hands what is left of dy to the window elements v that reach the maximum,
 * storing (=) or adding (+=) into o. */
#define POOL_ROUTE(T, STORE, v, o)                                                            \
    _Pragma("omp simd") for (int64_t ch = 0; ch < cn; ch++) {                                 \
        T l = left[ch];                                                                       \
        bool hit = !((v)[ch] < m[ch]);                                                        \
        (o)[ch] STORE hit ? l : (T)0;                                                         \
        left[ch] = hit ? (T)0 : l;                                                            \
    }
#define POOL_BWD(T)                                                                           \
    /* relu: max_pool_relu_grad, each stored gradient through relu_grad */                   \
    static inline __attribute__((always_inline)) void max_pool_grad_run_##T(const pool_plan *p, int64_t begin, \
                                                                            int64_t end, const bool relu) { \
        const em_conv_geom *g = &p->g;                                                        \
        const T *x = p->x, *dy = p->dy;                                                       \
        T *dx = p->out;                                                                       \
        const bool tiles = p->tiles;                                                          \
        int64_t image = g->h * g->w * g->c;                                                   \
        if (!tiles) memset(dx + begin * image, 0, sizeof(T) * (size_t)((end - begin) * image)); \
        for (int64_t n = begin; n < end; n++) {                                               \
            bool routed = false; /* windows that route by POOL_ROUTE: relu applies after all */ \
            for (int64_t oy = 0; oy < g->oh; oy++)                                            \
                for (int64_t ox = 0; ox < g->ow; ox++) {                                      \
                    int64_t y0, y1, x0, x1;                                                   \
                    em_pool_window(g, oy, ox, &y0, &y1, &x0, &x1);                            \
                    const T *d = dy + ((n * g->oh + oy) * g->ow + ox) * g->c;                 \
                    if (tiles && y1 - y0 == 2 && x1 - x0 == 2) { /* 2x2 tiles: one pass */   \
                        int64_t at = ((n * g->h + y0) * g->w + x0) * g->c, down = g->w * g->c; \
                        const T *v0 = x + at, *v1 = v0 + g->c, *v2 = v0 + down, *v3 = v2 + g->c; \
                        T *o0 = dx + at, *o1 = o0 + g->c, *o2 = o0 + down, *o3 = o2 + g->c;   \
                        _Pragma("omp simd") for (int64_t ch = 0; ch < g->c; ch++) {           \
                            T m = v0[ch], l = d[ch];                                          \
                            m = v1[ch] > m ? v1[ch] : m;                                      \
                            m = v2[ch] > m ? v2[ch] : m;                                      \
                            m = v3[ch] > m ? v3[ch] : m;                                      \
                            bool hit = !(v0[ch] < m);                                         \
                            T r0 = hit ? l : (T)0;                                            \
                            l = hit ? (T)0 : l;                                               \
                            hit = !(v1[ch] < m);                                              \
                            T r1 = hit ? l : (T)0;                                            \
                            l = hit ? (T)0 : l;                                               \
                            hit = !(v2[ch] < m);                                              \
                            T r2 = hit ? l : (T)0;                                            \
                            T r3 = hit ? (T)0 : !(v3[ch] < m) ? l : (T)0;                     \
                            o0[ch] = relu ? relu_grad_##T(v0[ch], r0) : r0;                   \
                            o1[ch] = relu ? relu_grad_##T(v1[ch], r1) : r1;                   \
                            o2[ch] = relu ? relu_grad_##T(v2[ch], r2) : r2;                   \
                            o3[ch] = relu ? relu_grad_##T(v3[ch], r3) : r3;                   \
                        }                                                                     \
                        continue;                                                             \
                    }                                                                         \
                    routed = true;                                                            \
                    for (int64_t c0 = 0; c0 < g->c; c0 += POOL_BLOCK) {                       \
                        int64_t cn = g->c - c0 < POOL_BLOCK ? g->c - c0 : POOL_BLOCK;         \
                        const T *first = x + ((n * g->h + y0) * g->w + x0) * g->c + c0;       \
                        T m[POOL_BLOCK], left[POOL_BLOCK];                                    \
                        for (int64_t ch = 0; ch < cn; ch++) {                                 \
                            m[ch] = first[ch];                                                \
                            left[ch] = d[c0 + ch];                                            \
                        }                                                                     \
                        for (int64_t iy = y0; iy < y1; iy++)                                  \
                            for (int64_t ix = x0; ix < x1; ix++) {                            \
                                const T *v = x + ((n * g->h + iy) * g->w + ix) * g->c + c0;   \
                                _Pragma("omp simd") for (int64_t ch = 0; ch < cn; ch++) m[ch] = v[ch] > m[ch] ? v[ch] : m[ch]; \
                            }                                                                 \
                        for (int64_t iy = y0; iy < y1; iy++)                                  \
                            for (int64_t ix = x0; ix < x1; ix++) {                            \
                                int64_t at = ((n * g->h + iy) * g->w + ix) * g->c + c0;       \
                                if (tiles) {                                                  \
                                    POOL_ROUTE(T, =, x + at, dx + at)                         \
                                } else {                                                      \
                                    POOL_ROUTE(T, +=, x + at, dx + at)                        \
                                }                                                             \
                            }                                                                 \
                    }                                                                         \
                }                                                                             \
            if (relu && routed) /* (again on the 2x2 tiles' pixels: it changes nothing there) */ \
                _Pragma("omp simd") for (int64_t i = n * image; i < (n + 1) * image; i++)     \
                    dx[i] = relu_grad_##T(x[i], dx[i]);                                       \
        }                                                                                     \
    }                                                                                         \
    EM_HOT static void max_pool_grad_##T(void *ctx, int64_t begin, int64_t end) {             \
        max_pool_grad_run_##T(ctx, begin, end, false);                                        \
    }                                                                                         \
    EM_HOT static void max_pool_relu_grad_##T(void *ctx, int64_t begin, int64_t end) {        \
        max_pool_grad_run_##T(ctx, begin, end, true);                                         \
    }                                                                                         \
    static void avg_pool_grad_##T(void *ctx, int64_t begin, int64_t end) {                    \
        const pool_plan *p = ctx;                                                             \
        const em_conv_geom *g = &p->g;                                                        \
        const T *dy = p->dy;                                                                  \
        T *dx = p->out;                                                                       \
        memset(dx + begin * g->h * g->w * g->c, 0, sizeof(T) * (size_t)((end - begin) * g->h * g->w * g->c)); \
        for (int64_t n = begin; n < end; n++)                                                 \
            for (int64_t oy = 0; oy < g->oh; oy++)                                            \
                for (int64_t ox = 0; ox < g->ow; ox++) {                                      \
                    int64_t y0, y1, x0, x1;                                                   \
                    em_pool_window(g, oy, ox, &y0, &y1, &x0, &x1);                            \
                    const T *d = dy + ((n * g->oh + oy) * g->ow + ox) * g->c;                 \
                    T inv = (T)1 / (T)((y1 - y0) * (x1 - x0));                                \
                    for (int64_t iy = y0; iy < y1; iy++)                                      \
                        for (int64_t ix = x0; ix < x1; ix++) {                                \
                            T *v = dx + ((n * g->h + iy) * g->w + ix) * g->c;                 \
                            _Pragma("omp simd") for (int64_t ch = 0; ch < g->c; ch++) v[ch] += d[ch] * inv;       \
                        }                                                                     \
                }                                                                             \
    }
POOL_BWD(float)
POOL_BWD(double)

static void pool_run(const em_call *c, em_tensor *out, const int64_t *xs, const void *x, const void *dy,
                     em_range_fn f32, em_range_fn f64, bool per_image) {
    if (out->numel == 0) return; /* e.g. no channels: the loops below would still walk every window */
    pool_plan p = {.x = x, .dy = dy, .out = out->data};
    pool_geom(c, xs, &p.g);
    const em_conv_geom *g = &p.g;
    p.tiles = g->sh == g->kh && g->sw == g->kw && (g->oh - 1) * g->sh - g->ph + g->kh >= g->h &&
              (g->ow - 1) * g->sw - g->pw + g->kw >= g->w;
    int64_t rows = per_image ? p.g.n : p.g.n * p.g.oh;
    /* Work per row, to size the chunks: in double, as windows of a huge ksize
     * (clamped to the input when run) would overflow it. */
    double work = (double)(per_image ? p.g.oh : 1) * (double)p.g.ow * (double)p.g.c * (double)p.g.kh * (double)p.g.kw;
    int64_t grain = work >= 16384 ? 1 : (int64_t)(16384 / (work > 1 ? work : 1));
    em__parallel_for(rows, grain, out->dtype == EM_F32 ? f32 : f64, &p);
}
static void max_pool_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, c->in[0]->shape, c->in[0]->data, NULL, max_pool_float, max_pool_double, false);
}
static void avg_pool_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, c->in[0]->shape, c->in[0]->data, NULL, avg_pool_float, avg_pool_double, false);
}
static void max_pool_grad_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, out->shape, c->in[0]->data, c->in[1]->data, max_pool_grad_float, max_pool_grad_double, true);
}
static void max_pool_relu_grad_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, out->shape, c->in[0]->data, c->in[1]->data, max_pool_relu_grad_float, max_pool_relu_grad_double,
             true);
}
static void avg_pool_grad_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, out->shape, NULL, c->in[0]->data, avg_pool_grad_float, avg_pool_grad_double, true);
}

static int max_pool_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = em__nn_sibling(c, EM_OP_MAX_POOL_GRAD, c->in[0], g, NULL);
    return gin[0] ? 0 : -1;
}

static int avg_pool_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = em__nn_sibling(c, EM_OP_AVG_POOL_GRAD, g, NULL, c->in[0]);
    return gin[0] ? 0 : -1;
}

/* avg_pool_grad applies the transpose of the (linear) average pool, so its
 * own gradient is the average pool. */
static int avg_pool_grad_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = em__nn_sibling(c, EM_OP_AVG_POOL, g, NULL, NULL);
    return gin[0] ? 0 : -1;
}

/* The pools share a shape rule. */
#define max_pool_infer pool_infer
#define avg_pool_infer pool_infer
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, name##_view, name##_grad)
#include "pool.def"
#undef EM_OP

/* ---- public functions ---- */

static em_tensor *pool(em_op op, const char *name, em_tensor *input, const int *ksize, const int *strides,
                       em_padding padding) {
    if (!ksize) {
        em__error("%s: ksize is NULL; give the window as {h, w}", name);
        return NULL;
    }
    em_attrs a = {.i = {strides ? strides[0] : 1, strides ? strides[1] : 1, ksize[0], ksize[1], padding}, .ni = A_SHAPE};
    return em__apply(op, 1, &input, &a);
}
em_tensor *em_max_pool(em_tensor *input, const int *ksize, const int *strides, em_padding padding) {
    return pool(EM_OP_MAX_POOL, "max_pool", input, ksize, strides, padding);
}
em_tensor *em_avg_pool(em_tensor *input, const int *ksize, const int *strides, em_padding padding) {
    return pool(EM_OP_AVG_POOL, "avg_pool", input, ksize, strides, padding);
}
