/* 2-D convolution (float32 and float64): conv2d and its two backprops.
 *
 * Attributes (nn.h): i[0..1] strides {h, w}, i[2..3] dilations {h, w}, i[4]
 * padding (em_padding), i[5..8] the shape the backprop op produces
 * (backprop_input: the input's NHWC shape; backprop_filter: the filter's HWIO
 * shape).
 *
 * Convolutions of float32 with stride and dilation 1 run direct AVX-512
 * kernels where the CPU has them (see "Direct convolution" below); the rest
 * are im2col + gemm (BLIS). Either way the batch is cut into tasks of whole
 * images whose number depends only on the shapes; tasks run on the thread
 * pool (BLIS single-threaded in each), and the filter gradient sums one
 * partial per task in task order, so results do not depend on the thread
 * count. Within an im2col task, output pixels are lowered in groups small
 * enough to stay in cache. Geometry (TF's padding rule) is in
 * lib/conv_geometry.h.
 *
 * conv2d_bias_relu, the graph's fusion of conv2d -> bias add -> relu
 * (lib/graph/optimize.c), is the forward convolution with relu(y + bias)
 * applied to each output tile while it is still in registers (the direct
 * kernel) or in cache (right after each group's gemm): the pre-activations
 * never go to memory. */
#include "../gpu.h"
#include "../internal.h"
#include "nn.h"
#include "nn_math.h"
#include "regtile.h"


/* Checks input shape xs (NHWC) against filter shape fs (HWIO, or depthwise's
 * [KH,KW,C,M]: C M output channels), and dy (if given) against the
 * convolution's output shape, which goes to *out. */
static int conv_check(const em_call *c, bool depthwise, const int64_t *xs, const int64_t *fs, const em_tensor *dy,
                      em_conv_geom *g, int64_t *out) {
    char b0[160], b1[160];
    if (fs[2] != xs[3])
        return em__op_error(c, "filter %s expects %lld input channels but input %s has %lld",
                            em__nn_shape_str(4, fs, b0, sizeof b0), (long long)fs[2],
                            em__nn_shape_str(4, xs, b1, sizeof b1), (long long)xs[3]);
    if (em__nn_geom(c, xs, fs[0], fs[1], depthwise ? fs[2] * fs[3] : fs[3], true, g)) return -1;
    int64_t os[4] = {g->n, g->oh, g->ow, g->o};
    if (dy && (dy->ndim != 4 || memcmp(dy->shape, os, sizeof os) != 0))
        return em__op_error(c, "out_backprop %s must have the convolution's output shape %s",
                            em__tshape(dy, b0, sizeof b0), em__nn_shape_str(4, os, b1, sizeof b1));
    memcpy(out, os, sizeof os);
    return 0;
}

int em__conv_infer(const em_call *c, bool depthwise, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_conv_geom g;
    if (em__nn_same_float(c, "input", "filter") || em__nn_need_rank4(c, 0, "input") ||
        em__nn_need_rank4(c, 1, "filter") ||
        conv_check(c, depthwise, c->in[0]->shape, c->in[1]->shape, NULL, &g, shape))
        return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

int em__conv_backprop_input_infer(const em_call *c, bool depthwise, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_conv_geom g;
    int64_t os[4];
    if (em__nn_same_float(c, "filter", "out_backprop") || em__nn_need_rank4(c, 0, "filter") ||
        em__nn_attr_shape(c, "input", shape) || conv_check(c, depthwise, shape, c->in[0]->shape, c->in[1], &g, os))
        return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

int em__conv_backprop_filter_infer(const em_call *c, bool depthwise, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_conv_geom g;
    int64_t os[4];
    if (em__nn_same_float(c, "input", "out_backprop") || em__nn_need_rank4(c, 0, "input") ||
        em__nn_attr_shape(c, "filter", shape) || conv_check(c, depthwise, c->in[0]->shape, shape, c->in[1], &g, os))
        return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

static int conv2d_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    return em__conv_infer(c, false, dtype, ndim, shape);
}
/* inputs (filter, out_backprop), i[5..8] the input shape. */
static int conv2d_backprop_input_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    return em__conv_backprop_input_infer(c, false, dtype, ndim, shape);
}
/* inputs (input, out_backprop), i[5..8] the filter shape. */
static int conv2d_backprop_filter_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    return em__conv_backprop_filter_infer(c, false, dtype, ndim, shape);
}
/* inputs (input, filter, bias): conv2d's, and a bias of one value per output channel. */
static int conv2d_bias_relu_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (em__conv_infer(c, false, dtype, ndim, shape)) return -1;
    const em_tensor *bias = c->in[2];
    char b0[160];
    if (bias->dtype != c->in[0]->dtype)
        return em__op_error(c, "bias has dtype %s but input has %s", em_dtype_name((em_dtype)bias->dtype),
                            em_dtype_name((em_dtype)c->in[0]->dtype));
    if (bias->ndim != 1 || bias->shape[0] != shape[3])
        return em__op_error(c, "bias %s must be 1-D with one value per output channel (%lld)",
                            em__tshape(bias, b0, sizeof b0), (long long)shape[3]);
    return 0;
}

typedef enum { CONV_FWD, CONV_BPI, CONV_BPF } conv_kind;

/* Most tasks (partial filter gradients) backprop_filter splits the batch into. */
enum { BPF_TASKS = 8 };

/* ---- Direct convolution: float32, stride 1, dilation 1, AVX-512 ----
 * im2col copies each input pixel kh*kw times and BLIS packs that copy once
 * more; at the small channel counts of image models the copying, not the
 * arithmetic, bounds the gemm (about 60% of peak at the CNN example's
 * shapes). The direct kernels read a zero-padded copy of each image where it
 * lies, through the register-tile kernel of regtile.c (em_regtile): a tile
 * of output rows x up to 64 channels stays in vector registers while the sum
 * runs over the filter taps (forward; backprop input, which is the forward
 * convolution of the padded dy with the flipped, transposed filter) or over
 * the pixels (backprop filter). Each output element is one sum in a fixed
 * order, so results do not depend on the thread count. */

/* Where the direct kernels read their input: each image of src (h x w x c)
 * copied into a zero-filled hp x wp image at row top, column left. */
typedef struct {
    const float *src;
    int64_t h, w, c, top, left, hp, wp;
} conv_pad;

typedef struct {
    em_conv_geom g;
    conv_kind kind;
    em_dtype dtype;
    size_t es;
    int64_t K, P1, group; /* K = kh*kw*c columns, P1 pixels per image, group rows lowered at once */
    bool pointwise;       /* 1x1, stride 1, no padding: the input is its own im2col */
    bool single;          /* tasks run in parallel: single-threaded BLIS */
    conv_pad pad;         /* the direct kernels: the padded input (forward, backprop filter) or dy (backprop input) */
    int64_t per;          /* images per task */
    const char *x, *f, *dy;
    int64_t wt_rs, wt_cs; /* backprop input: strides of W^T as f holds it */
    char *out, *partials; /* partials: one K x O block per task (backprop filter) */
    const char *bias;     /* conv2d_bias_relu: out = relu(conv + bias) */
} conv_plan;

/* dst[c][r] = src[r][c] for a rows x cols matrix of es-byte elements. */
static void transpose2d(char *dst, const char *src, int64_t rows, int64_t cols, size_t es) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const char *s = src + (size_t)(r * cols + c) * es;
            char *d = dst + (size_t)(c * rows + r) * es;
            if (es == 4)
                memcpy(d, s, 4);
            else
                memcpy(d, s, 8);
        }
}

/* conv2d_bias_relu's epilogue on `rows` output pixels of o channels at y, in place. */
#define BIAS_RELU_ROWS(T)                                                                               \
    do {                                                                                                \
        T *v = (T *)y;                                                                                  \
        const T *b = (const T *)p->bias;                                                                \
        for (int64_t r = 0; r < rows; r++, v += o)                                                      \
            _Pragma("omp simd") for (int64_t j = 0; j < o; j++) v[j] = EM_NN(bias_relu, T)(v[j], b[j]); \
    } while (0)
static void bias_relu_rows(const conv_plan *p, char *y, int64_t rows) {
    int64_t o = p->g.o;
    if (p->dtype == EM_F32) BIAS_RELU_ROWS(float);
    else BIAS_RELU_ROWS(double);
}
#undef BIAS_RELU_ROWS

/* The filter columns [*k0, *k1) whose input column lies inside [0, w) for
 * output column ox; with dilation 1 they read consecutive input pixels. */
static void valid_taps(const em_conv_geom *g, int64_t ox, int64_t *k0, int64_t *k1) {
    int64_t first = em_conv_in_x(g, ox, 0);
    *k0 = first >= 0 ? 0 : (-first + g->dw - 1) / g->dw;
    *k1 = first >= g->w ? 0 : (g->w - 1 - first) / g->dw + 1;
    if (*k1 > g->kw) *k1 = g->kw;
    if (*k1 < *k0) *k1 = *k0;
}

/* Lowers output pixels [r0, r1) (over the whole batch) into rows of col.
 * Each filter row copies its valid taps as one run when they are adjacent. */
static void im2col(const conv_plan *p, int64_t r0, int64_t r1, char *col) {
    const em_conv_geom *g = &p->g;
    size_t cb = (size_t)g->c * p->es;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / p->P1, q = r % p->P1, oy = q / g->ow, ox = q % g->ow, k0, k1;
        valid_taps(g, ox, &k0, &k1);
        char *row = col + (size_t)((r - r0) * p->K) * p->es;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            int64_t iy = em_conv_in_y(g, oy, ky);
            char *dst = row + (size_t)(ky * g->kw) * cb;
            if (iy < 0 || iy >= g->h || k0 == k1) {
                memset(dst, 0, cb * (size_t)g->kw);
                continue;
            }
            memset(dst, 0, cb * (size_t)k0);
            memset(dst + cb * (size_t)k1, 0, cb * (size_t)(g->kw - k1));
            const char *src = p->x + (size_t)((n * g->h + iy) * g->w + em_conv_in_x(g, ox, k0)) * cb;
            if (g->dw == 1)
                memcpy(dst + cb * (size_t)k0, src, cb * (size_t)(k1 - k0));
            else
                for (int64_t kx = k0; kx < k1; kx++) memcpy(dst + cb * (size_t)kx, src + (size_t)((kx - k0) * g->dw) * cb, cb);
        }
    }
}

/* Adds the rows of col for output pixels [r0, r1) back into dx (as im2col). */
#define COL2IM(T)                                                                             \
    static void col2im_##T(const conv_plan *p, int64_t r0, int64_t r1, const T *col, T *dx) { \
        const em_conv_geom *g = &p->g;                                                        \
        int64_t step = g->dw * g->c;                                                         \
        for (int64_t r = r0; r < r1; r++) {                                                   \
            int64_t n = r / p->P1, q = r % p->P1, oy = q / g->ow, ox = q % g->ow, k0, k1;     \
            valid_taps(g, ox, &k0, &k1);                                                      \
            if (k0 == k1) continue;                                                           \
            const T *row = col + (r - r0) * p->K;                                             \
            int64_t runs = g->dw == 1 ? 1 : k1 - k0, len = g->dw == 1 ? (k1 - k0) * g->c : g->c; \
            for (int64_t ky = 0; ky < g->kh; ky++) {                                          \
                int64_t iy = em_conv_in_y(g, oy, ky);                                         \
                if (iy < 0 || iy >= g->h) continue;                                           \
                const T *s = row + (ky * g->kw + k0) * g->c;                                  \
                T *d = dx + ((n * g->h + iy) * g->w + em_conv_in_x(g, ox, k0)) * g->c;        \
                for (int64_t k = 0; k < runs; k++, s += g->c, d += step)                      \
                    _Pragma("omp simd") for (int64_t j = 0; j < len; j++) d[j] += s[j];        \
            }                                                                                 \
        }                                                                                     \
    }
COL2IM(float)
COL2IM(double)

/* One task: images [n0, n1). */
static void conv_task(void *ctx, int64_t n0, int64_t n1) {
    const conv_plan *p = ctx;
    const em_conv_geom *g = &p->g;
    size_t es = p->es;
    int64_t K = p->K, O = g->o, r0 = n0 * p->P1, r1 = n1 * p->P1;
    int64_t in_img = g->h * g->w * g->c;
    char *col = NULL;
    if (!p->pointwise && !(col = em__scratch((size_t)(p->group * K) * es))) {
        em__error("%s: out of memory for a %lld x %lld im2col buffer", p->kind == CONV_FWD ? "conv2d" : "conv2d backprop",
                  (long long)p->group, (long long)K);
        return;
    }
    char *dw = p->kind == CONV_BPF ? p->partials + (size_t)((n0 / p->per) * K * O) * es : NULL;
    if (p->kind == CONV_BPI) memset(p->out + (size_t)(n0 * in_img) * es, 0, (size_t)((n1 - n0) * in_img) * es);
    for (int64_t a = r0; a < r1; a += p->group) {
        int64_t b = a + p->group < r1 ? a + p->group : r1, rows = b - a;
        const char *dyr = p->dy ? p->dy + (size_t)(a * O) * es : NULL;
        const char *lowered = p->pointwise && p->x ? p->x + (size_t)(a * K) * es : col; /* backprop-input has no x */
        switch (p->kind) {
        case CONV_FWD: /* y[rows] = col[rows] W */
            if (!p->pointwise) im2col(p, a, b, col);
            em__gemm(p->dtype, rows, O, K, lowered, K, 1, p->f, O, 1, false, p->out + (size_t)(a * O) * es, O, 1,
                     p->single);
            if (p->bias) bias_relu_rows(p, p->out + (size_t)(a * O) * es, rows);
            break;
        case CONV_BPI: /* dcol[rows] = dy[rows] W^T, scattered back into dx */
            em__gemm(p->dtype, rows, K, O, dyr, O, 1, p->f, p->wt_rs, p->wt_cs, false,
                     p->pointwise ? p->out + (size_t)(a * K) * es : col, K, 1, p->single);
            if (!p->pointwise) {
                if (p->dtype == EM_F32)
                    col2im_float(p, a, b, (const float *)col, (float *)p->out);
                else
                    col2im_double(p, a, b, (const double *)col, (double *)p->out);
            }
            break;
        case CONV_BPF: /* dW += col[rows]^T dy[rows] */
            if (!p->pointwise) im2col(p, a, b, col);
            em__gemm(p->dtype, K, O, rows, lowered, 1, K, dyr, O, 1, a != r0, dw, O, 1, p->single);
            break;
        }
    }
    em__scratch_free(col);
}

#ifdef EM_REGTILE_KERNEL
static void pad_image(const conv_pad *d, int64_t n, float *dst) {
    const float *src = d->src + n * d->h * d->w * d->c;
    size_t pixel = sizeof(float) * (size_t)d->c;
    for (int64_t y = 0; y < d->hp; y++) {
        float *row = dst + y * d->wp * d->c;
        int64_t sy = y - d->top;
        if (sy < 0 || sy >= d->h) {
            memset(row, 0, pixel * (size_t)d->wp);
            continue;
        }
        memset(row, 0, pixel * (size_t)d->left);
        memcpy(row + d->left * d->c, src + sy * d->w * d->c, pixel * (size_t)d->w);
        memset(row + (d->left + d->w) * d->c, 0, pixel * (size_t)(d->wp - d->left - d->w));
    }
}

/* Forward (and backprop input, as a forward convolution): images [n0, n1),
 * each padded, then a tile of output pixels x channels at a time, summing over
 * the filter's rows (r) and each row's kw x channels taps (t). */
static void tiled_forward_task(void *ctx, int64_t n0, int64_t n1) {
    const conv_plan *p = ctx;
    const conv_pad *d = &p->pad;
    const em_conv_geom *g = &p->g;
    int64_t oh = d->hp - g->kh + 1, ow = d->wp - g->kw + 1, pixels = oh * ow;
    int64_t oc = p->kind == CONV_BPI ? g->c : g->o, taps = g->kw * d->c;
    float *img = em__scratch(sizeof(float) * (size_t)(d->hp * d->wp * d->c));
    if (!img) {
        em__error("%s: out of memory for a padded image", p->kind == CONV_FWD ? "conv2d" : "conv2d_backprop_input");
        return;
    }
    for (int64_t n = n0; n < n1; n++) {
        pad_image(d, n, img);
        for (int64_t o0 = 0; o0 < oc; o0 += EM_REGTILE_COLS) {
            em_regtile k = {.b = (const float *)p->f + o0, .nr = g->kh, .nt = taps, .ar = d->wp * d->c,
                           .at = 1, .br = taps * oc, .bt = oc, .cj = oc,
                           .bias = p->bias ? (const float *)p->bias + o0 : NULL};
            int vecs = em__regtile_vecs(oc - o0), full = em__regtile_rows(vecs);
            for (int64_t q = 0; q < pixels; q += full) {
                int rows = (int)(pixels - q < full ? pixels - q : full);
                for (int j = 0; j < rows; j++) k.a[j] = img + ((q + j) / ow * d->wp + (q + j) % ow) * d->c;
                k.c = (float *)p->out + (n * pixels + q) * oc + o0;
                em__regtile_run(rows, vecs, &k);
            }
        }
    }
    em__scratch_free(img);
}

/* Backprop filter: this task's images padded a few at a time (about
 * FILTER_CHUNK_BYTES, at least one image); then, band after band of about
 * FILTER_BAND_PIXELS output pixels of each image in order, a tile of filter
 * taps x output channels at a time sums over the band's rows (r) and columns
 * (t). The first band's sums start the task's partial gradient; each later
 * band's are summed apart and then added, so float32 rounding grows with a
 * band, not with the batch (as BLIS's blocking does for the im2col path). */
enum { FILTER_CHUNK_BYTES = 1 << 20, FILTER_BAND_PIXELS = 256 };
static void tiled_filter_task(void *ctx, int64_t n0, int64_t n1) {
    const conv_plan *p = ctx;
    const conv_pad *d = &p->pad;
    const em_conv_geom *g = &p->g;
    int64_t image = d->hp * d->wp * d->c, O = g->o, pixels = g->oh * g->ow;
    int64_t chunk = FILTER_CHUNK_BYTES / (image * (int64_t)sizeof(float));
    if (chunk < 1) chunk = 1;
    if (chunk > n1 - n0) chunk = n1 - n0;
    int64_t band = (FILTER_BAND_PIXELS + g->ow - 1) / g->ow;
    float *imgs = em__scratch(sizeof(float) * (size_t)(chunk * image));
    if (!imgs) {
        em__error("conv2d_backprop_filter: out of memory for %lld padded images", (long long)chunk);
        return;
    }
    float *dw = (float *)p->partials + (n0 / p->per) * p->K * O, part[EM_REGTILE_MAX_ROWS * EM_REGTILE_COLS];
    for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
        int64_t c1 = c0 + chunk < n1 ? c0 + chunk : n1;
        for (int64_t n = c0; n < c1; n++) pad_image(d, n, imgs + (n - c0) * image);
        for (int64_t n = c0; n < c1; n++)
            for (int64_t y0 = 0; y0 < g->oh; y0 += band) {
                const float *rows0 = imgs + (n - c0) * image + y0 * d->wp * d->c;
                bool first = n == n0 && y0 == 0;
                for (int64_t o0 = 0; o0 < O; o0 += EM_REGTILE_COLS) {
                    em_regtile k = {.b = (const float *)p->dy + (n * pixels + y0 * g->ow) * O + o0,
                                    .nr = g->oh - y0 < band ? g->oh - y0 : band, .nt = g->ow, .ar = d->wp * d->c,
                                    .at = d->c, .br = g->ow * O, .bt = O, .cj = first ? O : EM_REGTILE_COLS};
                    int vecs = em__regtile_vecs(O - o0), full = em__regtile_rows(vecs);
                    for (int64_t k0 = 0; k0 < p->K; k0 += full) {
                        int rows = (int)(p->K - k0 < full ? p->K - k0 : full);
                        for (int j = 0; j < rows; j++) {
                            int64_t tap = (k0 + j) / d->c, ci = (k0 + j) % d->c;
                            k.a[j] = rows0 + (tap / g->kw * d->wp + tap % g->kw) * d->c + ci;
                        }
                        float *to = dw + k0 * O + o0;
                        k.c = first ? to : part;
                        em__regtile_run(rows, vecs, &k);
                        for (int j = 0; !first && j < rows; j++) {
                            const float *src = part + j * EM_REGTILE_COLS;
                            float *dst = to + j * O;
                            _Pragma("omp simd") for (int q = 0; q < 16 * vecs; q++) dst[q] += src[q];
                        }
                    }
                }
            }
    }
    em__scratch_free(imgs);
}

/* Whether the direct kernels take this convolution, and where they read. */
static bool tiled_plan(conv_plan *p) {
    const em_conv_geom *g = &p->g;
    int64_t vector_channels = p->kind == CONV_BPI ? g->c : g->o;
    if (p->dtype != EM_F32 || p->pointwise || g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1 ||
        vector_channels % 16 != 0 || !em__regtile_ready())
        return false;
    if (p->kind == CONV_BPI) /* the padded dy: a full correlation with the flipped filter */
        p->pad = (conv_pad){(const float *)p->dy, g->oh, g->ow, g->o, g->kh - 1 - g->ph, g->kw - 1 - g->pw,
                            g->h + g->kh - 1, g->w + g->kw - 1};
    else
        p->pad = (conv_pad){(const float *)p->x, g->h, g->w, g->c, g->ph, g->pw, g->oh + g->kh - 1, g->ow + g->kw - 1};
    return true;
}

/* dst[ky][kx][o][c] = w[kh-1-ky][kw-1-kx][c][o]: backprop input's filter. */
static void flip_filter(float *dst, const float *w, const em_conv_geom *g) {
    for (int64_t ky = 0; ky < g->kh; ky++)
        for (int64_t kx = 0; kx < g->kw; kx++) {
            const float *src = w + ((g->kh - 1 - ky) * g->kw + (g->kw - 1 - kx)) * g->c * g->o;
            transpose2d((char *)(dst + (ky * g->kw + kx) * g->o * g->c), (const char *)src, g->c, g->o, sizeof(float));
        }
}
#endif

/* out = sum of the tasks' partials, added in task order. */
#define SUM_PARTIALS(T)                                                            \
    static void sum_partials_##T(void *ctx, int64_t begin, int64_t end) {          \
        const conv_plan *p = ctx;                                                  \
        int64_t size = p->K * p->g.o, tasks = (p->g.n + p->per - 1) / p->per;      \
        const T *part = (const T *)p->partials;                                    \
        T *out = (T *)p->out;                                                      \
        memcpy(out + begin, part + begin, sizeof(T) * (size_t)(end - begin));      \
        for (int64_t t = 1; t < tasks; t++) {                                      \
            const T *pt = part + t * size;                                         \
            _Pragma("omp simd") for (int64_t j = begin; j < end; j++) out[j] += pt[j]; \
        }                                                                          \
    }
SUM_PARTIALS(float)
SUM_PARTIALS(double)

/* Runs one of the three convolution kernels. */
static void conv_run(const em_call *c, em_tensor *out, conv_kind kind) {
    conv_plan p = {.kind = kind, .dtype = (em_dtype)out->dtype, .es = em_dtype_size((em_dtype)out->dtype),
                   .out = out->data};
    const int64_t *xs = kind == CONV_BPI ? out->shape : c->in[0]->shape;
    const int64_t *fs = kind == CONV_BPF ? out->shape : c->in[kind == CONV_FWD ? 1 : 0]->shape;
    int64_t os[4];
    conv_check(c, false, xs, fs, NULL, &p.g, os);
    if (kind == CONV_FWD) {
        p.x = c->in[0]->data;
        p.f = c->in[1]->data;
        p.bias = c->n > 2 ? c->in[2]->data : NULL;
    } else {
        p.dy = c->in[1]->data;
        if (kind == CONV_BPI) p.f = c->in[0]->data;
        else p.x = c->in[0]->data;
    }
    const em_conv_geom *g = &p.g;
    p.K = g->kh * g->kw * g->c;
    p.P1 = g->oh * g->ow;
    p.pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
    if (out->numel == 0) return;
    if (p.K == 0 || p.P1 == 0 || g->o == 0 || g->n == 0) { /* an empty sum (a filter gradient over no images) */
        memset(out->data, 0, (size_t)out->numel * p.es);
        if (p.bias) bias_relu_rows(&p, out->data, out->numel / g->o);
        return;
    }
    /* Groups of about 256K lowered elements; tasks of about one group, at
     * most N/64 images (so the batch splits evenly over the threads). */
    p.group = ((int64_t)1 << 18) / p.K;
    if (p.group < 64) p.group = 64;
    int64_t cap = (g->n + 63) / 64;
    p.per = (p.group + p.P1 - 1) / p.P1;
    if (p.per > cap) p.per = cap;
    int64_t tasks = (g->n + p.per - 1) / p.per;
    if (kind == CONV_BPF && tasks > BPF_TASKS) { /* few partials: less memory and summing */
        p.per = (g->n + BPF_TASKS - 1) / BPF_TASKS;
        tasks = (g->n + p.per - 1) / p.per;
    }
    p.single = tasks > 1 && em__threads() > 1;
    p.partials = out->data;
    if (kind == CONV_BPF && tasks > 1 && !(p.partials = em__scratch((size_t)(tasks * p.K * g->o) * p.es))) {
        em__error("conv2d_backprop_filter: out of memory for %lld partial sums", (long long)tasks);
        memset(out->data, 0, (size_t)out->numel * p.es);
        return;
    }
    char *wt = kind == CONV_BPI ? em__scratch((size_t)(p.K * g->o) * p.es) : NULL;
    em_range_fn task = conv_task;
#ifdef EM_REGTILE_KERNEL
    if ((kind != CONV_BPI || wt) && tiled_plan(&p)) {
        if (wt) flip_filter((float *)wt, (const float *)p.f, g);
        task = kind == CONV_BPF ? tiled_filter_task : tiled_forward_task;
    }
#endif
    /* BLIS runs dy W^T half again as fast with W^T row-major: transpose the
     * (small) filter once; without the memory, use W's own strides. */
    p.wt_rs = 1;
    p.wt_cs = g->o;
    if (wt && task == conv_task) {
        transpose2d(wt, p.f, p.K, g->o, p.es);
        p.wt_rs = p.K;
        p.wt_cs = 1;
    }
    if (wt) p.f = wt;
    em__parallel_for(g->n, p.per, task, &p);
    em__scratch_free(wt);
    if (p.partials != (char *)out->data) {
        em__parallel_for(p.K * g->o, 4096, p.dtype == EM_F32 ? sum_partials_float : sum_partials_double, &p);
        em__scratch_free(p.partials);
    }
}
static void conv2d_cpu(const em_call *c, em_tensor *out) { conv_run(c, out, CONV_FWD); }
static void conv2d_backprop_input_cpu(const em_call *c, em_tensor *out) { conv_run(c, out, CONV_BPI); }
static void conv2d_backprop_filter_cpu(const em_call *c, em_tensor *out) { conv_run(c, out, CONV_BPF); }
static void conv2d_bias_relu_cpu(const em_call *c, em_tensor *out) { conv_run(c, out, CONV_FWD); }

/* y = conv(x, w): dx = backprop_input(w, g), dw = backprop_filter(x, g). */
static int conv2d_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *x = c->in[0], *w = c->in[1];
    if (need[0] && !(gin[0] = em__nn_sibling(c, EM_OP_CONV2D_BACKPROP_INPUT, w, g, x))) return -1;
    if (need[1] && !(gin[1] = em__nn_sibling(c, EM_OP_CONV2D_BACKPROP_FILTER, x, g, w))) return -1;
    return 0;
}

/* dx = backprop_input(w, dy) is linear in each input; with G its gradient:
 * d/dw = backprop_filter(G, dy), d/ddy = conv(G, w). */
static int conv2d_backprop_input_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *w = c->in[0], *dy = c->in[1];
    if (need[0] && !(gin[0] = em__nn_sibling(c, EM_OP_CONV2D_BACKPROP_FILTER, g, dy, w))) return -1;
    if (need[1] && !(gin[1] = em__nn_sibling(c, EM_OP_CONV2D, g, w, NULL))) return -1;
    return 0;
}

/* dw = backprop_filter(x, dy): d/dx = backprop_input(G, dy), d/ddy = conv(x, G). */
static int conv2d_backprop_filter_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *x = c->in[0], *dy = c->in[1];
    if (need[0] && !(gin[0] = em__nn_sibling(c, EM_OP_CONV2D_BACKPROP_INPUT, g, dy, x))) return -1;
    if (need[1] && !(gin[1] = em__nn_sibling(c, EM_OP_CONV2D, x, g, NULL))) return -1;
    return 0;
}

/* A convolution does a row of multiply-adds per output element. */
static int64_t conv_cost(const em_call *c) {
    (void)c;
    return 256;
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, name##_view, name##_grad)
#include "conv.def"
#undef EM_OP

/* ---- public functions ---- */

em_tensor *em_conv2d(em_tensor *input, em_tensor *filter, const int *strides, em_padding padding,
                     const int *dilations) {
    em_attrs a = {.i = {strides ? strides[0] : 1, strides ? strides[1] : 1, dilations ? dilations[0] : 1,
                        dilations ? dilations[1] : 1, padding},
                  .ni = A_SHAPE};
    em_tensor *in[2] = {input, filter};
    return em__apply(EM_OP_CONV2D, 2, in, &a);
}
