/* moments (TF's tf.nn.moments): the mean and the variance over a set of axes in one read of x, float32 and
 * float64. The formulas (shifted sums in double, and why) are moments_math.h's; gpu/moments.cu calls them too.
 *
 * The op writes one tensor [2, kept dims of x]: the means, then the variances. em_moments splits it along
 * the first axis and squeezes it (views), then puts back the reduced axes as size 1 for keepdims
 * (em_expand_dims, so no shape is fixed in a traced graph). The gradient of either half reaches the op's
 * rule through those views, the other half's as zeros.
 *
 * Attributes: i[0] the bitmask of the reduced axes (normalised), ni = 1.
 *
 * The kernel follows lib/reduce_plan.h's plan, as the reductions do. Neighbouring outputs that read
 * neighbouring inputs (the per-channel statistics of NHWC batch norm) are summed COLS at a time along the
 * rows, each column a double lane; outputs that read runs (the last axis) sum LANES interleaved double
 * partials. A few outputs over many elements are cut into chunks whose sums are added in chunk order.
 * Every choice depends on the shape alone, so results do not depend on the thread count. */
#include "../internal.h"
#include "../reduce_plan.h"
#include "moments_math.h"

#include <inttypes.h>

#define COLS 256          /* neighbouring outputs summed together */
#define LANES 16          /* interleaved partial sums of a run: 4 AVX-512 registers (32 spill to memory) */
#define WORK_GRAIN 32768  /* input elements per parallel chunk, at least */
#define SPLIT_UNITS 8     /* at most this many units (outputs, or blocks of COLS neighbouring ones): chunk them */
#define SPLIT_MIN 32768   /* input elements per chunk, at least */
#define SPLIT_PARTS 64    /* chunks per unit, at most */

typedef struct {
    em_reduce_plan p;
    const void *x;
    void *out;
    bool f32;
    int64_t nout;
    int64_t blocks;   /* units per row of the plan's outer index: COLS-blocks of inner (1 when inner is 1) */
    int64_t parts;    /* chunks per unit */
    int64_t chunk;    /* a chunk's size: steps (inner > 1) or reduced elements (inner 1) */
    double *partial;  /* parts > 1: [unit][part][2][COLS] sums */
    int64_t row_stride; /* plain rows (rows_T): the distance between their starts */
} mctx;

/* Output oi's mean and variance from its shift and sums. */
static void finish(const mctx *k, int64_t oi, double shift, double s1, double s2) {
    double n = (double)k->p.count, mean = em_moments_mean(shift, s1, n), var = em_moments_variance(s1, s2, n);
    if (k->f32) {
        ((float *)k->out)[oi] = (float)mean;
        ((float *)k->out)[k->nout + oi] = (float)var;
    } else {
        ((double *)k->out)[oi] = mean;
        ((double *)k->out)[k->nout + oi] = var;
    }
}

/* One step of span's tree: the upper w partials onto the lower (LANES is 16: 8, 4, 2, 1). */
#define FOLD(w)                                                                                                        \
    for (int l = 0; l < (w); l++) l1[l] += l1[l + (w)], l2[l] += l2[l + (w)];

/* Sums of d = x - shift and of d^2 for one unit's chunk: the n outputs from b0 of row o over the reduced
 * steps [s0, s1) (inner > 1), or output o over its reduced elements [r0, r1) (inner 1). */
#define MOMENTS_SUMS(T)                                                                                               \
    EM_HOT static void cols_##T(const mctx *k, int64_t o, int64_t b0, int64_t n, int64_t s0, int64_t s1,               \
                                const double *shift, double *a1, double *a2) {                                         \
        const T *x = k->x;                                                                                             \
        int64_t base = em_plan_offset(k->p.nkeep, k->p.kdim, k->p.kstride, o) + b0;                                    \
        int64_t stride = k->p.nred == 1 ? k->p.rstride[0] : 0;                                                         \
        double sh[COLS], s1_[COLS], s2_[COLS]; /* local: the loop knows they alias nothing */                         \
        for (int64_t b = 0; b < n; b++) sh[b] = shift[b], s1_[b] = s2_[b] = 0;                                          \
        for (int64_t s = s0; s < s1; s++) {                                                                            \
            const T *px = x + (k->p.nred == 1 ? base + s * stride : em_plan_at(&k->p, o, s) + b0);                     \
            _Pragma("omp simd") for (int64_t b = 0; b < n; b++) {                                                      \
                double d = (double)px[b] - sh[b];                                                                      \
                s1_[b] += d;                                                                                           \
                s2_[b] += d * d;                                                                                       \
            }                                                                                                          \
        }                                                                                                              \
        for (int64_t b = 0; b < n; b++) a1[b] = s1_[b], a2[b] = s2_[b];                                                \
    }                                                                                                                  \
    /* The sums of px[0, n): LANES interleaved partials (the tail in the first), joined by a fixed tree. Always    \
     * inlined, so each EM_HOT caller's clone vectorizes it and keeps the partials in registers. */                  \
    static inline __attribute__((always_inline)) void span_##T(const T *px, int64_t n, double shift, double *a1,       \
                                                               double *a2) {                                           \
        double l1[LANES] = {0}, l2[LANES] = {0};                                                                       \
        int64_t j = 0;                                                                                                 \
        for (; j + LANES <= n; j += LANES)                                                                             \
            for (int l = 0; l < LANES; l++) {                                                                          \
                double d = (double)px[j + l] - shift;                                                                  \
                l1[l] += d;                                                                                            \
                l2[l] += d * d;                                                                                        \
            }                                                                                                          \
        for (; j < n; j++) {                                                                                           \
            double d = (double)px[j] - shift;                                                                          \
            l1[0] += d;                                                                                                \
            l2[0] += d * d;                                                                                            \
        }                                                                                                              \
        FOLD(8) FOLD(4) FOLD(2) FOLD(1)                                                                                \
        *a1 = l1[0];                                                                                                   \
        *a2 = l2[0];                                                                                                   \
    }                                                                                                                  \
    EM_HOT static void run_##T(const mctx *k, int64_t o, int64_t r0, int64_t r1, double shift, double *a1,             \
                               double *a2) {                                                                           \
        double s1 = 0, s2 = 0;                                                                                         \
        int64_t s = r0 / k->p.run, j = r0 % k->p.run, r = r0;                                                          \
        while (r < r1) { /* the runs in order, each one span */                                                       \
            int64_t jend = k->p.run < j + (r1 - r) ? k->p.run : j + (r1 - r);                                          \
            double t1, t2;                                                                                             \
            span_##T((const T *)k->x + em_plan_at(&k->p, o, s) + j, jend - j, shift, &t1, &t2);                        \
            s1 += t1;                                                                                                  \
            s2 += t2;                                                                                                  \
            r += jend - j;                                                                                             \
            s++;                                                                                                       \
            j = 0;                                                                                                     \
        }                                                                                                              \
        *a1 = s1;                                                                                                      \
        *a2 = s2;                                                                                                      \
    }                                                                                                                  \
    /* Outputs [o0, o1) of plain rows (each one contiguous run, rows `stride` apart), one chunk each: no index       \
     * arithmetic per output; the same sums as run_ gives a whole row. */                                           \
    EM_HOT static void rows_##T(const mctx *k, int64_t o0, int64_t o1, int64_t stride) {                               \
        for (int64_t o = o0; o < o1; o++) {                                                                            \
            const T *px = (const T *)k->x + o * stride;                                                                \
            double shift = k->p.count ? em_moments_shift((double)px[0]) : 0, s1, s2;                                   \
            span_##T(px, k->p.count, shift, &s1, &s2);                                                                 \
            finish(k, o, shift, s1, s2);                                                                               \
        }                                                                                                              \
    }
MOMENTS_SUMS(float)
MOMENTS_SUMS(double)

static double load(const mctx *k, int64_t at) { return k->f32 ? ((const float *)k->x)[at] : ((const double *)k->x)[at]; }

/* Unit u's outputs: the first oi, their number n, and their shifts (each output's first element). */
static int64_t unit_outputs(const mctx *k, int64_t u, int64_t *oi, double *shift) {
    int64_t o = u / k->blocks, b0 = u % k->blocks * COLS;
    int64_t n = k->p.inner - b0 < COLS ? k->p.inner - b0 : COLS;
    if (!k->p.count) { /* nothing reduced: no first element to shift by, and a reduced dim of 0 to index by */
        for (int64_t b = 0; b < n; b++) shift[b] = 0;
    } else {
        int64_t first = em_plan_at(&k->p, o, 0) + b0;
        for (int64_t b = 0; b < n; b++) shift[b] = em_moments_shift(load(k, first + b));
    }
    *oi = o * k->p.inner + b0;
    return n;
}

/* Work items it = unit * parts + part: a chunk's sums, finished at once when a unit is one chunk. */
static void moments_items(void *ctx, int64_t begin, int64_t end) {
    const mctx *k = ctx;
    double shift[COLS], a1[COLS], a2[COLS];
    for (int64_t it = begin; it < end; it++) {
        int64_t u = it / k->parts, q = it % k->parts, o = u / k->blocks, oi;
        int64_t n = unit_outputs(k, u, &oi, shift);
        int64_t total = k->p.inner > 1 ? k->p.steps : k->p.count;
        int64_t lo = q * k->chunk, hi = lo + k->chunk < total ? lo + k->chunk : total;
        if (k->p.inner > 1 && k->f32) cols_float(k, o, u % k->blocks * COLS, n, lo, hi, shift, a1, a2);
        else if (k->p.inner > 1) cols_double(k, o, u % k->blocks * COLS, n, lo, hi, shift, a1, a2);
        else if (k->f32) run_float(k, o, lo, hi, shift[0], a1, a2);
        else run_double(k, o, lo, hi, shift[0], a1, a2);
        if (k->parts == 1) {
            for (int64_t b = 0; b < n; b++) finish(k, oi + b, shift[b], a1[b], a2[b]);
        } else {
            double *p = k->partial + it * 2 * COLS;
            memcpy(p, a1, sizeof(double) * (size_t)n);
            memcpy(p + COLS, a2, sizeof(double) * (size_t)n);
        }
    }
}

static void moments_rows(void *ctx, int64_t begin, int64_t end) {
    const mctx *k = ctx;
    if (k->f32) rows_float(k, begin, end, k->row_stride);
    else rows_double(k, begin, end, k->row_stride);
}

/* Adds each unit's chunk sums in chunk order and finishes its outputs. */
static void combine_parts(const mctx *k, int64_t units) {
    double shift[COLS];
    for (int64_t u = 0; u < units; u++) {
        int64_t oi, n = unit_outputs(k, u, &oi, shift);
        for (int64_t b = 0; b < n; b++) {
            double s1 = 0, s2 = 0;
            for (int64_t q = 0; q < k->parts; q++) {
                const double *p = k->partial + (u * k->parts + q) * 2 * COLS;
                s1 += p[b];
                s2 += p[COLS + b];
            }
            finish(k, oi + b, shift[b], s1, s2);
        }
    }
}

static void moments_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    mctx k = {.x = x->data, .out = out->data, .f32 = x->dtype == EM_F32, .nout = out->numel / 2, .parts = 1};
    em_reduce_plan_init(&k.p, x->ndim, x->shape, x->strides, (uint64_t)c->a->i[0]);
    if (k.nout == 0) return;
    k.blocks = (k.p.inner + COLS - 1) / COLS;
    int64_t units = k.p.outer * k.blocks, width = k.p.inner < COLS ? k.p.inner : COLS;
    int64_t total = k.p.inner > 1 ? k.p.steps : k.p.count; /* what a unit's chunks cut */
    int64_t work = total * width;                          /* input elements per unit */
    k.chunk = total;
    if (units <= SPLIT_UNITS && work >= 2 * SPLIT_MIN) {
        int64_t parts = (work + SPLIT_MIN - 1) / SPLIT_MIN;
        if (parts > SPLIT_PARTS) parts = SPLIT_PARTS;
        k.chunk = (total + parts - 1) / parts;
        k.parts = (total + k.chunk - 1) / k.chunk;
    }
    if (k.parts > 1 && !(k.partial = em__scratch(sizeof(double) * (size_t)(units * k.parts * 2 * COLS)))) {
        em__error("moments: out of memory for the partial sums of x [%" PRId64 " elements]", x->numel);
        return;
    }
    int64_t item_work = work / k.parts ? work / k.parts : 1, grain = item_work >= WORK_GRAIN ? 1 : WORK_GRAIN / item_work;
    if (k.p.inner == 1 && k.p.nred == 0 && k.p.nkeep <= 1 && k.parts == 1) {
        k.row_stride = k.p.nkeep ? k.p.kstride[0] : 0;
        em__parallel_for(units, grain, moments_rows, &k);
        return;
    }
    em__parallel_for(units * k.parts, grain, moments_items, &k);
    if (k.parts > 1) {
        combine_parts(&k, units);
        em__scratch_free(k.partial);
    }
}

/* ---- shape rule ---- */

static int moments_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    uint64_t mask = (uint64_t)c->a->i[0];
    char b[160];
    if (!(c->def->dtypes & EM_DT(x->dtype)))
        return em__op_error(c, "x must be float32 or float64, got %s %s", em_dtype_name((em_dtype)x->dtype),
                            em__tshape(x, b, sizeof b));
    if (mask >> x->ndim)
        return em__op_error(c, "axes mask %#" PRIx64 " exceeds the rank %d of x %s", mask, x->ndim,
                            em__tshape(x, b, sizeof b));
    int kept = em_reduce_shape(x->ndim, x->shape, mask, 0, shape + 1);
    if (kept + 1 > EM_MAX_DIMS)
        return em__op_error(c, "x %s reduced over no axis leaves %d dims, and the two results need one more (at most %d)",
                            em__tshape(x, b, sizeof b), kept, EM_MAX_DIMS);
    shape[0] = 2;
    *ndim = kept + 1;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

/* ---- gradient rule ---- */

/* The mean and the variance halves of a [2, kept dims] tensor as views, of the kept dims, or with the reduced
 * axes of an x of rank ndim put back as size 1 (keepdims). Either output may be NULL. 0, or -1 with an error. */
static int unpack(em_tensor *packed, int ndim, uint64_t mask, bool keepdims, em_tensor **mean, em_tensor **var) {
    em_tensor *half[2] = {NULL, NULL};
    if (em_split(packed, 2, 0, half)) return -1;
    for (int k = 0; k < 2; k++) {
        half[k] = em_squeeze(half[k], EM_AXES(0));
        for (int d = 0; keepdims && d < ndim; d++)
            if (mask >> d & 1u) half[k] = em_expand_dims(half[k], d);
        if (!half[k]) return -1;
    }
    if (mean) *mean = half[0];
    if (var) *var = half[1];
    return 0;
}

/* dx = (dmean + 2 dvar (x - mean)) / n, the halves broadcast back over the reduced axes. */
static int moments_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)need;
    em_tensor *x = c->in[0], *mean, *dmean, *dvar;
    uint64_t mask = (uint64_t)c->a->i[0];
    if (unpack(out, x->ndim, mask, true, &mean, NULL) || unpack(gout, x->ndim, mask, true, &dmean, &dvar)) return -1;
    em_tensor *g = em_add(dmean, em_mul(dvar, em_mul_scalar(em_sub(x, mean), 2)));
    gin[0] = em_div(g, em__count(x, (int64_t)mask));
    return gin[0] ? 0 : -1;
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, NULL, name##_grad)
#include "moments.def"
#undef EM_OP

/* ---- public function ---- */

int em_moments(em_tensor *x, int naxes, const int *axes, bool keepdims, em_tensor **mean, em_tensor **variance) {
    if (!mean || !variance) {
        em__error("moments: mean and variance must point to where the results go");
        return -1;
    }
    *mean = *variance = NULL;
    if (!x) return em__null_input("moments"), -1;
    int64_t mask = em__axes_mask("moments", x, naxes, axes);
    if (mask < 0) return -1;
    em_tensor *packed = em__apply(EM_OP_MOMENTS, 1, &x, &(em_attrs){.i = {mask}, .ni = 1});
    em_tensor *m, *v;
    if (!packed || unpack(packed, x->ndim, (uint64_t)mask, keepdims, &m, &v)) return -1;
    *mean = m;
    *variance = v;
    return 0;
}
