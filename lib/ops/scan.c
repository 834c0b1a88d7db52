/* Scans: cumsum and cumprod along one axis, TF's arguments (exclusive,
 * reverse). The arithmetic is lib/ops/scan_math.h's, shared with the CUDA
 * kernels (gpu/scan.cu).
 *
 * The input (made contiguous by the dispatcher) is [outer, n, inner]. The
 * kernel walks the axis once for a group of lines, an `omp simd` loop over
 * the group at each step: SCAN_BLOCK neighbouring lines when inner > 1, or
 * SCAN_ROWS rows when each row is a line (a scan over the last axis), whose
 * independent sums hide the add latency that bounds a single row. Each line
 * is summed in order, so results do not depend on the thread count. */
#include "scan_math.h"

#include "../internal.h"

#define SCAN_BLOCK 256   /* neighbouring lines walked together */
#define SCAN_ROWS 4     /* rows scanned together when each is a line (inner 1) */
#define SCAN_GRAIN 32768 /* elements per parallel chunk */

typedef struct scan_job {
    const void *x;
    void *y;
    int64_t outer, n, inner, blocks; /* blocks: SCAN_BLOCK-wide blocks per outer index */
    bool exclusive, reverse;
} scan_job;

/* Unit b of the work: with inner 1, rows b SCAN_ROWS .. (interleaved, so
 * that their sums are independent chains rather than one chain of add
 * latencies); else block b % blocks of outer index b / blocks. */
#define SCAN_KERNEL(E, sfx, T, U, C, MN, MX, name)                                                                     \
    EM_HOT static void name##_##sfx##_units(void *ctx, int64_t begin, int64_t end) {                                   \
        const scan_job *j = ctx;                                                                                       \
        const T *x = j->x;                                                                                             \
        T *y = j->y;                                                                                                   \
        const int64_t n = j->n;                                                                                        \
        const bool exclusive = j->exclusive;                                                                           \
        em_scan_##name##_##sfx##_acc acc[SCAN_BLOCK];                                                                  \
        for (int64_t b = begin; b < end; b++) {                                                                        \
            int64_t first, w, stride; /* the unit's first line, its lines and their distance apart */                 \
            if (j->inner == 1) {                                                                                       \
                first = b * SCAN_ROWS * n;                                                                             \
                w = j->outer - b * SCAN_ROWS < SCAN_ROWS ? j->outer - b * SCAN_ROWS : SCAN_ROWS;                       \
                stride = n;                                                                                            \
            } else {                                                                                                   \
                int64_t i0 = b % j->blocks * SCAN_BLOCK;                                                               \
                first = b / j->blocks * n * j->inner + i0;                                                             \
                w = j->inner - i0 < SCAN_BLOCK ? j->inner - i0 : SCAN_BLOCK;                                           \
                stride = 1;                                                                                            \
            }                                                                                                          \
            for (int64_t i = 0; i < w; i++) acc[i] = EM_SCAN_INIT_##name;                                              \
            for (int64_t k = 0; k < n; k++) {                                                                          \
                int64_t at = first + (j->reverse ? n - 1 - k : k) * (j->inner == 1 ? 1 : j->inner);                    \
                const T *restrict xr = x + at;                                                                         \
                T *restrict yr = y + at;                                                                               \
                if (stride == 1) {                                                                                     \
                    if (exclusive) {                                                                                   \
                        _Pragma("omp simd") for (int64_t i = 0; i < w; i++) yr[i] =                                    \
                            em_scan_##name##_##sfx##_step(&acc[i], xr[i], true);                                       \
                    } else {                                                                                           \
                        _Pragma("omp simd") for (int64_t i = 0; i < w; i++) yr[i] =                                    \
                            em_scan_##name##_##sfx##_step(&acc[i], xr[i], false);                                      \
                    }                                                                                                  \
                } else { /* rows: scalar, the chains overlap without gathers */                                        \
                    for (int64_t i = 0; i < w; i++) yr[i * stride] =                                                   \
                        em_scan_##name##_##sfx##_step(&acc[i], xr[i * stride], exclusive);                             \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }
EM_FOR_NUMERIC(SCAN_KERNEL, cumsum)
EM_FOR_NUMERIC(SCAN_KERNEL, cumprod)

#define SCAN_ENTRY(E, sfx, T, U, C, MN, MX, name) [E] = name##_##sfx##_units,
static const em_range_fn cumsum_kernels[EM_DTYPE_COUNT] = {EM_FOR_NUMERIC(SCAN_ENTRY, cumsum)};
static const em_range_fn cumprod_kernels[EM_DTYPE_COUNT] = {EM_FOR_NUMERIC(SCAN_ENTRY, cumprod)};

static void scan_run(const em_call *c, em_tensor *out, const em_range_fn *kernels) {
    const em_tensor *x = c->in[0];
    int axis = (int)c->a->i[0];
    scan_job j = {.x = x->data, .y = out->data, .n = x->shape[axis], .inner = 1,
                  .exclusive = c->a->i[1] != 0, .reverse = c->a->i[2] != 0};
    for (int d = axis + 1; d < x->ndim; d++) j.inner *= x->shape[d];
    j.outer = x->numel / (j.n * j.inner);
    j.blocks = (j.inner + SCAN_BLOCK - 1) / SCAN_BLOCK;
    int64_t units = j.inner == 1 ? (j.outer + SCAN_ROWS - 1) / SCAN_ROWS : j.outer * j.blocks;
    int64_t per_unit = j.n * (j.inner == 1 ? SCAN_ROWS : j.inner < SCAN_BLOCK ? j.inner : SCAN_BLOCK);
    em__parallel_for(units, per_unit >= SCAN_GRAIN ? 1 : SCAN_GRAIN / per_unit, kernels[x->dtype], &j);
}
static void cpu_cumsum(const em_call *c, em_tensor *out) { scan_run(c, out, cumsum_kernels); }
static void cpu_cumprod(const em_call *c, em_tensor *out) { scan_run(c, out, cumprod_kernels); }

static int scan_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    char b[160];
    if (!(c->def->dtypes & EM_DT(x->dtype)))
        return em__op_error(c, "input of dtype %s %s is not supported (a numeric dtype)",
                            em_dtype_name((em_dtype)x->dtype), em__tshape(x, b, sizeof b));
    *dtype = (em_dtype)x->dtype;
    *ndim = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return 0;
}

static em_tensor *scan(em_op op, em_tensor *x, int axis, bool exclusive, bool reverse) {
    const char *name = em__op_def(op)->name;
    char b[160];
    if (!x) return em__null_input(name);
    int a = axis < 0 ? axis + x->ndim : axis;
    if (a < 0 || a >= x->ndim) {
        em__error("%s: axis %d is out of range for input of shape %s (rank %d)", name, axis,
                  em__tshape(x, b, sizeof b), x->ndim);
        return NULL;
    }
    return em__apply(op, 1, &x, &(em_attrs){.ni = 3, .i = {a, exclusive, reverse}});
}

em_tensor *em_cumsum(em_tensor *x, int axis, bool exclusive, bool reverse) {
    return scan(EM_OP_CUMSUM, x, axis, exclusive, reverse);
}
em_tensor *em_cumprod(em_tensor *x, int axis, bool exclusive, bool reverse) {
    return scan(EM_OP_CUMPROD, x, axis, exclusive, reverse);
}

/* cumsum's gradient is the cumsum of g the other way. */
static int grad_cumsum(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out, (void)need;
    gin[0] = em_cumsum(g, (int)c->a->i[0], c->a->i[1], !c->a->i[2]);
    return gin[0] ? 0 : -1;
}

/* TF's formula: cumsum(out g, the other way) / x. Like TF's it divides by x:
 * at an element that is zero the gradient is NaN (0 / 0) or infinite, where
 * the true one is a finite product of the other elements. */
static int grad_cumprod(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)need;
    gin[0] = em_div(em_cumsum(em_mul(out, g), (int)c->a->i[0], c->a->i[1], !c->a->i[2]), c->in[0]);
    return gin[0] ? 0 : -1;
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost)                                                      \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, scan_infer, cpu_##name, NULL, grad_##name)
#include "scan.def"
#undef EM_OP
