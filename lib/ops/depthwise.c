/* The depthwise convolution and its two gradient ops, float32 and float64: input NHWC [N,H,W,C], filter
 * [KH,KW,C,M], output [N,OH,OW,C M] with output channel c M + m = sum over the taps of input channel c times
 * filter (ky, kx, c, m); TensorFlow's padding (conv_geometry.h). The CPU kernels run along the channels,
 * contiguous in NHWC, so their inner loops vectorize; each element sums in double in depthwise_math.h's
 * order, as gpu/depthwise.cu's kernels do. The gradient ops gather (no scatter): every element of dx or
 * dfilter sums what it feeds. */
#include "../internal.h"
#include "depthwise_math.h"
#include "nn.h"

#include <stdlib.h>

/* The shape rules: conv.c's, with C M output channels. */
static int depthwise_conv2d_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    return em__conv_infer(c, true, dtype, ndim, shape);
}
static int depthwise_backprop_input_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    return em__conv_backprop_input_infer(c, true, dtype, ndim, shape);
}
static int depthwise_backprop_filter_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    return em__conv_backprop_filter_infer(c, true, dtype, ndim, shape);
}

/* The geometry of a call from the input and filter shapes (checked by the shape rule). */
static em_conv_geom geom_of(const em_call *c, const int64_t *xs, const int64_t *fs) {
    em_conv_geom g;
    em__nn_geom(c, xs, fs[0], fs[1], fs[2] * fs[3], true, &g);
    return g;
}

typedef struct {
    em_conv_geom g;
    int64_t m;          /* the channel multiplier */
    const void *a, *b;  /* forward: x, f; input gradient: f, dy; filter gradient: x, dy */
    void *out;
    atomic_bool failed; /* a worker's accumulator row could not be allocated */
} dw_ctx;

#define DW_KERNELS(T)                                                                                                  \
    /* Output rows (n, oy): per pixel, the taps' input rows times the filter rows, along C M. */                      \
    static void dw_fwd_##T(void *p, int64_t r0, int64_t r1) {                                                          \
        dw_ctx *k = p;                                                                                                 \
        const em_conv_geom *g = &k->g;                                                                                 \
        const T *x = k->a, *f = k->b;                                                                                  \
        T *y = k->out;                                                                                                 \
        const int64_t M = k->m, CM = g->o;                                                                             \
        double *acc = malloc(sizeof(double) * (size_t)CM);                                                            \
        if (!acc) {                                                                                                    \
            atomic_store(&k->failed, true);                                                                            \
            return;                                                                                                    \
        }                                                                                                              \
        for (int64_t r = r0; r < r1; r++) {                                                                            \
            int64_t n = r / g->oh, oy = r % g->oh;                                                                     \
            for (int64_t ox = 0; ox < g->ow; ox++) {                                                                   \
                for (int64_t j = 0; j < CM; j++) acc[j] = 0;                                                           \
                for (int64_t ky = 0; ky < g->kh; ky++) {                                                               \
                    int64_t iy = em_conv_in_y(g, oy, ky);                                                              \
                    if (iy < 0 || iy >= g->h) continue;                                                                \
                    for (int64_t kx = 0; kx < g->kw; kx++) {                                                           \
                        int64_t ix = em_conv_in_x(g, ox, kx);                                                          \
                        if (ix < 0 || ix >= g->w) continue;                                                            \
                        const T *xr = x + ((n * g->h + iy) * g->w + ix) * g->c, *fr = f + (ky * g->kw + kx) * CM;      \
                        for (int64_t j = 0; j < CM; j++) acc[j] += (double)xr[j / M] * (double)fr[j];                  \
                    }                                                                                                  \
                }                                                                                                      \
                T *yr = y + ((n * g->oh + oy) * g->ow + ox) * CM;                                                      \
                for (int64_t j = 0; j < CM; j++) yr[j] = (T)acc[j];                                                    \
            }                                                                                                          \
        }                                                                                                              \
        free(acc);                                                                                                     \
    }                                                                                                                  \
    /* Input rows (n, iy): per pixel, the outputs each tap feeds, times the filter, summed over m. */                 \
    static void dw_bpi_##T(void *p, int64_t r0, int64_t r1) {                                                          \
        dw_ctx *k = p;                                                                                                 \
        const em_conv_geom *g = &k->g;                                                                                 \
        const T *f = k->a, *dy = k->b;                                                                                 \
        T *dx = k->out;                                                                                                \
        const int64_t M = k->m, C = g->c;                                                                              \
        double *acc = malloc(sizeof(double) * (size_t)C);                                                             \
        if (!acc) {                                                                                                    \
            atomic_store(&k->failed, true);                                                                            \
            return;                                                                                                    \
        }                                                                                                              \
        for (int64_t r = r0; r < r1; r++) {                                                                            \
            int64_t n = r / g->h, iy = r % g->h;                                                                       \
            for (int64_t ix = 0; ix < g->w; ix++) {                                                                    \
                for (int64_t ch = 0; ch < C; ch++) acc[ch] = 0;                                                        \
                for (int64_t ky = 0; ky < g->kh; ky++) {                                                               \
                    int64_t oy = em_dw_out_of(iy, ky, g->sh, g->dh, g->ph, g->oh);                                     \
                    if (oy < 0) continue;                                                                              \
                    for (int64_t kx = 0; kx < g->kw; kx++) {                                                           \
                        int64_t ox = em_dw_out_of(ix, kx, g->sw, g->dw, g->pw, g->ow);                                 \
                        if (ox < 0) continue;                                                                          \
                        const T *dr = dy + ((n * g->oh + oy) * g->ow + ox) * C * M, *fr = f + (ky * g->kw + kx) * C * M; \
                        for (int64_t ch = 0; ch < C; ch++)                                                             \
                            for (int64_t m = 0; m < M; m++)                                                            \
                                acc[ch] += (double)dr[ch * M + m] * (double)fr[ch * M + m];                            \
                    }                                                                                                  \
                }                                                                                                      \
                T *xr = dx + ((n * g->h + iy) * g->w + ix) * C;                                                        \
                for (int64_t ch = 0; ch < C; ch++) xr[ch] = (T)acc[ch];                                                \
            }                                                                                                          \
        }                                                                                                              \
        free(acc);                                                                                                     \
    }                                                                                                                  \
    /* Filter rows (ky, kx): the input pixels each tap reads times the outputs they feed, over the batch. */          \
    static void dw_bpf_##T(void *p, int64_t r0, int64_t r1) {                                                          \
        dw_ctx *k = p;                                                                                                 \
        const em_conv_geom *g = &k->g;                                                                                 \
        const T *x = k->a, *dy = k->b;                                                                                 \
        T *df = k->out;                                                                                                \
        const int64_t M = k->m, CM = g->o;                                                                             \
        double *acc = malloc(sizeof(double) * (size_t)CM);                                                            \
        if (!acc) {                                                                                                    \
            atomic_store(&k->failed, true);                                                                            \
            return;                                                                                                    \
        }                                                                                                              \
        for (int64_t r = r0; r < r1; r++) {                                                                            \
            int64_t ky = r / g->kw, kx = r % g->kw;                                                                    \
            for (int64_t j = 0; j < CM; j++) acc[j] = 0;                                                               \
            for (int64_t n = 0; n < g->n; n++)                                                                         \
                for (int64_t oy = 0; oy < g->oh; oy++) {                                                               \
                    int64_t iy = em_conv_in_y(g, oy, ky);                                                              \
                    if (iy < 0 || iy >= g->h) continue;                                                                \
                    for (int64_t ox = 0; ox < g->ow; ox++) {                                                           \
                        int64_t ix = em_conv_in_x(g, ox, kx);                                                          \
                        if (ix < 0 || ix >= g->w) continue;                                                            \
                        const T *xr = x + ((n * g->h + iy) * g->w + ix) * g->c,                                        \
                                *dr = dy + ((n * g->oh + oy) * g->ow + ox) * CM;                                       \
                        for (int64_t j = 0; j < CM; j++) acc[j] += (double)xr[j / M] * (double)dr[j];                  \
                    }                                                                                                  \
                }                                                                                                      \
            for (int64_t j = 0; j < CM; j++) df[r * CM + j] = (T)acc[j];                                               \
        }                                                                                                              \
        free(acc);                                                                                                     \
    }
DW_KERNELS(float)
DW_KERNELS(double)

typedef enum { DW_FWD, DW_BPI, DW_BPF } dw_kind;

static void dw_run(const em_call *c, em_tensor *out, dw_kind kind) {
    const em_tensor *a = c->in[0], *b = c->in[1];
    const int64_t *xs = kind == DW_BPI ? out->shape : a->shape, *fs = kind == DW_FWD ? b->shape
                                                                  : kind == DW_BPI ? a->shape
                                                                                   : out->shape;
    dw_ctx k = {.g = geom_of(c, xs, fs), .m = fs[3], .a = a->data, .b = b->data, .out = out->data};
    if (out->numel == 0) return;
    if (k.g.o == 0 || k.g.kh * k.g.kw == 0) { /* no channels or taps: nothing to add */
        memset(out->data, 0, (size_t)out->numel * em_dtype_size((em_dtype)out->dtype));
        return;
    }
    bool f32 = out->dtype == EM_F32;
    int64_t rows = kind == DW_FWD ? k.g.n * k.g.oh : kind == DW_BPI ? k.g.n * k.g.h : k.g.kh * k.g.kw;
    em_range_fn fn = kind == DW_FWD ? (f32 ? dw_fwd_float : dw_fwd_double)
                   : kind == DW_BPI ? (f32 ? dw_bpi_float : dw_bpi_double)
                                    : (f32 ? dw_bpf_float : dw_bpf_double);
    em__parallel_for(rows, 1, fn, &k);
    if (atomic_load(&k.failed)) em__error("%s: out of memory for a row of %lld sums", c->def->name, (long long)k.g.o);
}

static void depthwise_conv2d_cpu(const em_call *c, em_tensor *out) { dw_run(c, out, DW_FWD); }
static void depthwise_backprop_input_cpu(const em_call *c, em_tensor *out) { dw_run(c, out, DW_BPI); }
static void depthwise_backprop_filter_cpu(const em_call *c, em_tensor *out) { dw_run(c, out, DW_BPF); }

/* As conv2d's rules (lib/ops/conv.c): y = dw(x, f) gives dx = bpi(f, g), df = bpf(x, g); the gradient ops are
 * linear in each input, so their own gradients are the siblings again. */
static int depthwise_conv2d_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *x = c->in[0], *w = c->in[1];
    if (need[0] && !(gin[0] = em__nn_sibling(c, EM_OP_DEPTHWISE_BACKPROP_INPUT, w, g, x))) return -1;
    if (need[1] && !(gin[1] = em__nn_sibling(c, EM_OP_DEPTHWISE_BACKPROP_FILTER, x, g, w))) return -1;
    return 0;
}
static int depthwise_backprop_input_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need,
                                         em_tensor **gin) {
    (void)out;
    em_tensor *w = c->in[0], *dy = c->in[1];
    if (need[0] && !(gin[0] = em__nn_sibling(c, EM_OP_DEPTHWISE_BACKPROP_FILTER, g, dy, w))) return -1;
    if (need[1] && !(gin[1] = em__nn_sibling(c, EM_OP_DEPTHWISE_CONV2D, g, w, NULL))) return -1;
    return 0;
}
static int depthwise_backprop_filter_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need,
                                          em_tensor **gin) {
    (void)out;
    em_tensor *x = c->in[0], *dy = c->in[1];
    if (need[0] && !(gin[0] = em__nn_sibling(c, EM_OP_DEPTHWISE_BACKPROP_INPUT, g, dy, x))) return -1;
    if (need[1] && !(gin[1] = em__nn_sibling(c, EM_OP_DEPTHWISE_CONV2D, x, g, NULL))) return -1;
    return 0;
}

/* A multiply-add per tap of each output element. */
static int64_t depthwise_cost(const em_call *c) {
    const em_tensor *f = c->in[c->def->id == EM_OP_DEPTHWISE_BACKPROP_INPUT ? 0 : 1];
    return f->ndim == 4 && c->def->id != EM_OP_DEPTHWISE_BACKPROP_FILTER ? 2 * f->shape[0] * f->shape[1] + 1 : 256;
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, NULL, name##_grad)
#include "depthwise.def"
#undef EM_OP

em_tensor *em_depthwise_conv2d(em_tensor *input, em_tensor *filter, const int *strides, em_padding padding,
                               const int *dilations) {
    em_attrs a = {.i = {strides ? strides[0] : 1, strides ? strides[1] : 1, dilations ? dilations[0] : 1,
                        dilations ? dilations[1] : 1, padding},
                  .ni = A_SHAPE};
    return em__apply(EM_OP_DEPTHWISE_CONV2D, 2, (em_tensor *[]){input, filter}, &a);
}
