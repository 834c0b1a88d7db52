/* Reductions: sum, max, min, prod, log_sum_exp, reduce_any and reduce_all over
 * any set of axes, argmax and argmin over one axis; mean is a composite (sum / count).
 *
 * attrs (every row): i[0] = bitmask of the reduced axes (bit d: axis d,
 * normalised, no duplicates), i[1] = keepdims (0 or 1), ni = 2.
 *
 * Kernels follow the plan of lib/reduce_plan.h. Each output element is
 * accumulated in the row-major order of its reduced elements, so results do
 * not depend on the thread count. Only a reduction of a few outputs over many
 * elements is cut into fixed chunks whose partial results are combined in
 * order (the chunking depends on the shape alone). float32 sums add float32
 * lanes over short fixed blocks and the block sums in double (rows_f32.h:
 * at most 6 float32 roundings per term); other float sums and products
 * accumulate in double, integer ones in uint64 (wrapping like the dtype).
 * bfloat16 and float16 are read as they are stored, widened element by
 * element as float32 (never accumulated in their own type), and each result
 * is rounded once. */
#include "../gpu.h"
#include "../internal.h"
#include "../reduce_plan.h"
#include "rows_f32.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>


#define COLS 256          /* outputs per work item when neighbouring outputs read neighbouring inputs */
#define WORK_GRAIN 32768  /* input elements per parallel chunk */
#define SPLIT_OUTPUTS 4   /* at most this many outputs: cut each into chunks */
#define SPLIT_MIN 32768   /* elements per chunk, at least */
#define SPLIT_PARTS 64    /* chunks per output, at most */

typedef struct rctx {
    em_reduce_plan p;
    const void *x;
    void *out;
    void *partial;                /* outer * parts partial accumulators */
    int64_t blocks, parts, chunk; /* COLS-blocks of inner; chunks and their size */
} rctx;

typedef struct {
    em_range_fn cols, runs;
    void (*combine)(const rctx *k);
} reduce_fns;

static void run_reduce(const em_call *c, em_tensor *out, void *partial, const reduce_fns *f) {
    const em_tensor *x = c->in[0];
    rctx k = {.x = x->data, .out = out->data, .partial = partial};
    em_reduce_plan_init(&k.p, x->ndim, x->shape, x->strides, (uint64_t)c->a->i[0]);
    if (k.p.outer == 0) return;
    if (k.p.inner > 1) {
        k.blocks = (k.p.inner + COLS - 1) / COLS;
        int64_t work = k.p.count * (k.p.inner < COLS ? k.p.inner : COLS);
        em__parallel_for(k.p.outer * k.blocks, work >= WORK_GRAIN ? 1 : WORK_GRAIN / (work ? work : 1), f->cols, &k);
    } else if (k.p.outer <= SPLIT_OUTPUTS && k.p.count >= 2 * SPLIT_MIN) {
        k.parts = (k.p.count + SPLIT_MIN - 1) / SPLIT_MIN;
        if (k.parts > SPLIT_PARTS) k.parts = SPLIT_PARTS;
        k.chunk = (k.p.count + k.parts - 1) / k.parts;
        em__parallel_for(k.p.outer * k.parts, 1, f->runs, &k);
        f->combine(&k);
    } else {
        int64_t work = k.p.count ? k.p.count : 1;
        k.parts = 1;
        em__parallel_for(k.p.outer, work >= WORK_GRAIN ? 1 : WORK_GRAIN / work, f->runs, &k);
    }
}

/* Input offset of the row of column block (o, b0) at reduction step s: one reduced group (the usual case) steps
 * by its stride, with no index arithmetic per row. */
static inline int64_t col_row(const rctx *k, int64_t o, int64_t base, int64_t stride, int64_t b0, int64_t s) {
    return k->p.nred == 1 ? base + s * stride : em_plan_at(&k->p, o, s) + b0;
}

/* float32 sums: runs by em__sum_f32 (rows_f32.h: at most 6 float32 roundings a term), columns SUM_ROWS rows at a
 * time by a pairwise float32 tree (3 roundings) whose sums go to double, so the error is at most about
 * 6 u sum|x| (u = 2^-24) plus the final rounding, below pairwise float32 summation's log2(n) u sum|x|. Blocks
 * start at fixed offsets from a run's or chunk's start, which depend on the shape alone, never on the thread
 * count. */
#define SUM_ROWS 8 /* rows of a column block summed in float32 */

static inline __attribute__((always_inline)) void sum_rows_f32(double *acc, const float *const *rows, int64_t n) {
    int64_t b = 0;
    for (; b + 16 <= n; b += 16) {
        em_f32x16 p = {0}, q = {0}, u = {0}, v = {0};
        em__add_f32x16(&p, rows[0] + b), em__add_f32x16(&p, rows[1] + b);
        em__add_f32x16(&q, rows[2] + b), em__add_f32x16(&q, rows[3] + b);
        em__add_f32x16(&u, rows[4] + b), em__add_f32x16(&u, rows[5] + b);
        em__add_f32x16(&v, rows[6] + b), em__add_f32x16(&v, rows[7] + b);
        em_f32x16 t = (p + q) + (u + v);
        em_f64x8 lo, hi;
        memcpy(&lo, acc + b, sizeof lo);
        memcpy(&hi, acc + b + 8, sizeof hi);
        em__add_widened(&lo, &hi, &t);
        memcpy(acc + b, &lo, sizeof lo);
        memcpy(acc + b + 8, &hi, sizeof hi);
    }
    for (; b < n; b++) {
        float t = ((rows[0][b] + rows[1][b]) + (rows[2][b] + rows[3][b])) +
                  ((rows[4][b] + rows[5][b]) + (rows[6][b] + rows[7][b]));
        acc[b] += t;
    }
}

/* The largest (max) or smallest element of x[0, n), n > 0, or its first NaN: four vectors of running extremes
 * (a compare and a select each, no chain through a NaN test) beside vectors adding up v - v, NaN from a NaN (or
 * an infinity) on; the rare run that has one is read again for its first NaN. (A flag or-ing v != v into an
 * integer vector came out of GCC 12 element by element in these multi-target functions: 7 GB/s.) */
static inline __attribute__((always_inline)) void extreme_step(em_f32x16 *m, em_f32x16 *poison, const float *p, bool max) {
    em_f32x16 v;
    memcpy(&v, p, sizeof v);
    em_i32x16 take = max ? v > *m : v < *m;
    *m = (em_f32x16)((take & (em_i32x16)v) | (~take & (em_i32x16)*m));
    *poison += v - v;
}

static inline __attribute__((always_inline)) float extreme_run_f32(const float *x, int64_t n, bool max) {
    float e = x[0];
    int64_t i = 0;
    if (n >= 128) {
        /* the first 64 elements are the start, and are stepped over again for their NaNs */
        em_f32x16 m0, m1, m2, m3, p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0};
        memcpy(&m0, x, sizeof m0), memcpy(&m1, x + 16, sizeof m1);
        memcpy(&m2, x + 32, sizeof m2), memcpy(&m3, x + 48, sizeof m3);
        for (i = 0; i + 64 <= n; i += 64) {
            extreme_step(&m0, &p0, x + i, max);
            extreme_step(&m1, &p1, x + i + 16, max);
            extreme_step(&m2, &p2, x + i + 32, max);
            extreme_step(&m3, &p3, x + i + 48, max);
        }
        em_f32x16 poison = (p0 + p1) + (p2 + p3);
        for (int l = 0; l < 16; l++)
            if (isnan(poison[l]))
                for (int64_t j = 0; j < n; j++)
                    if (isnan(x[j])) return x[j];
        em_f32x16 m[4] = {m0, m1, m2, m3};
        for (int q = 0; q < 4; q++)
            for (int l = 0; l < 16; l++) e = max ? (m[q][l] > e ? m[q][l] : e) : (m[q][l] < e ? m[q][l] : e);
    }
    for (; i < n; i++) {
        if (isnan(x[i])) return x[i];
        e = max ? (x[i] > e ? x[i] : e) : (x[i] < e ? x[i] : e);
    }
    return e;
}

/* The RUN and COLUMNS hooks of DEFINE_REDUCE: float32 kernels take over whole runs and SUM_ROWS rows at a time;
 * ELEMENTS leaves all to the element loops. */
#define F32_SUM_RUN(acc, px, j, jend, r)                \
    do {                                                \
        (acc) += em__sum_f32((px) + (j), (jend) - (j)); \
        (r) += (jend) - (j);                            \
        (j) = (jend);                                   \
    } while (0)
#define F32_SUM_COLS(acc, x, k, o, base, stride, b0, n, s)                                          \
    for (; (s) + SUM_ROWS <= (k)->p.steps; (s) += SUM_ROWS) {                                       \
        const float *rows[SUM_ROWS];                                                                \
        for (int q = 0; q < SUM_ROWS; q++) rows[q] = (x) + col_row(k, o, base, stride, b0, (s) + q); \
        sum_rows_f32(acc, rows, n);                                                                 \
    }
#define F32_EXTREME_RUN(acc, px, j, jend, r, MAX, MERGE)                        \
    do {                                                                        \
        if ((jend) > (j)) {                                                     \
            float e = extreme_run_f32((px) + (j), (jend) - (j), MAX);           \
            MERGE(acc, e, isnan);                                               \
        }                                                                       \
        (r) += (jend) - (j);                                                    \
        (j) = (jend);                                                           \
    } while (0)
#define F32_MAX_RUN(acc, px, j, jend, r) F32_EXTREME_RUN(acc, px, j, jend, r, true, MERGE_MAX)
#define F32_MIN_RUN(acc, px, j, jend, r) F32_EXTREME_RUN(acc, px, j, jend, r, false, MERGE_MIN)
#define ELEMENTS_RUN(acc, px, j, jend, r) ((void)0)
#define ELEMENTS_COLS(acc, x, k, o, base, stride, b0, n, s) ((void)0)
#define ELEMENTS_SUM_RUN ELEMENTS_RUN
#define ELEMENTS_SUM_COLS ELEMENTS_COLS
#define ELEMENTS_MAX_RUN ELEMENTS_RUN
#define ELEMENTS_MIN_RUN ELEMENTS_RUN

/* One kernel for input type T and output type OT: values are LOADed into V,
 * accumulated into A by STEP (r: the reduced linear index), partials joined
 * by MERGE and written by STORE (oi: the output's linear index). */
/* LANES > 1: a run is accumulated in LANES interleaved partials joined in a
 * fixed order, which breaks the add-latency chain and vectorizes; the order
 * depends only on the shape, never on the thread count. Ops whose STEP looks
 * at the position (argmax) use one lane. */
/* RUN(acc, px, j, jend, r) and COLUMNS(acc, x, k, o, base, stride, b0, n, s) may take over the start of a run and the
 * first steps of a column block (float32 sums, max and min: F32_*); ELEMENTS_* leave
 * everything to the element loops. */
#define DEFINE_REDUCE(NAME, N, T, OT, V, A, INIT, LOAD, STEP, MERGE, STORE, ISNAN, LANES, RUN, COLUMNS)   \
    /* acc joined with the elements [j, jend) of a run at px, the first of them reduced element r. */        \
    EM_HOT static A NAME##_span(A acc, const T *px, const OT *out, int64_t o, int64_t j, int64_t jend,       \
                                 int64_t r) {                                                                \
        (void)out, (void)o;                                                                                  \
        RUN(acc, px, j, jend, r);                                                                            \
        if (LANES > 1 && jend - j >= 4 * LANES) {                                                            \
            A lane[LANES];                                                                                   \
            for (int l = 0; l < LANES; l++) lane[l] = INIT;                                                  \
            for (; j + LANES <= jend; j += LANES, r += LANES)                                                \
                for (int l = 0; l < LANES; l++) {                                                            \
                    V v = LOAD(N, px[j + l], o);                                                             \
                    STEP(lane[l], v, r + l, ISNAN);                                                          \
                }                                                                                            \
            for (int l = 0; l < LANES; l++) MERGE(acc, lane[l], ISNAN);                                      \
        }                                                                                                    \
        for (; j < jend; j++, r++) {                                                                         \
            V v = LOAD(N, px[j], o);                                                                         \
            STEP(acc, v, r, ISNAN);                                                                          \
        }                                                                                                    \
        return acc;                                                                                          \
    }                                                                                                        \
    /* Output o over its reduced elements [r0, r1). */                                                       \
    static inline __attribute__((always_inline)) A NAME##_range(const rctx *k, int64_t o, int64_t r0, int64_t r1) {\
        const T *x = k->x;                                                                                   \
        A acc = INIT;                                                                                        \
        int64_t s = r0 / k->p.run, j = r0 % k->p.run, r = r0;                                                \
        while (r < r1) {                                                                                     \
            int64_t jend = k->p.run < j + (r1 - r) ? k->p.run : j + (r1 - r);                                \
            acc = NAME##_span(acc, x + em_plan_at(&k->p, o, s), k->out, o, j, jend, r);                      \
            r += jend - j;                                                                                   \
            s++;                                                                                             \
            j = 0;                                                                                           \
        }                                                                                                    \
        return acc;                                                                                          \
    }                                                                                                        \
    EM_HOT static void NAME##_cols(void *ctx, int64_t begin, int64_t end) {                               \
        const rctx *k = ctx;                                                                              \
        const T *x = k->x;                                                                                \
        OT *out = k->out;                                                                                 \
        A acc[COLS];                                                                                      \
        for (int64_t it = begin; it < end; it++) {                                                        \
            int64_t o = it / k->blocks, b0 = it % k->blocks * COLS;                                       \
            int64_t n = k->p.inner - b0 < COLS ? k->p.inner - b0 : COLS, oi = o * k->p.inner + b0;        \
            for (int64_t b = 0; b < n; b++) acc[b] = INIT;                                                \
            int64_t base = em_plan_offset(k->p.nkeep, k->p.kdim, k->p.kstride, o) + b0;                    \
            int64_t stride = k->p.nred == 1 ? k->p.rstride[0] : 0;                                        \
            int64_t s = 0;                                                                                \
            COLUMNS(acc, x, k, o, base, stride, b0, n, s);                                                   \
            for (; s < k->p.steps; s++) {                                                                 \
                const T *px = x + col_row(k, o, base, stride, b0, s);                                     \
                _Pragma("omp simd") for (int64_t b = 0; b < n; b++) {                                     \
                    V v = LOAD(N, px[b], oi + b);                                                            \
                    STEP(acc[b], v, s, ISNAN);                                                            \
                }                                                                                         \
            }                                                                                             \
            for (int64_t b = 0; b < n; b++) STORE(N, out[oi + b], acc[b]);                                   \
        }                                                                                                 \
    }                                                                                                     \
    /* Work item it: output it / parts, its chunk it % parts (parts == 1: the whole output, stored; else a   \
     * partial). Whole outputs that each read one contiguous run at a fixed stride (rows of a matrix, the    \
     * usual case) take a loop of their own, without the plan's walk: through the general loop (range),      \
     * float32 rows that stream from memory ran 10% slower (4096 x 1024 and 4096 x 4096, the same span; the  \
     * cause not pinned down). */                                                                            \
    EM_HOT static void NAME##_runs(void *ctx, int64_t begin, int64_t end) {                                  \
        const rctx *k = ctx;                                                                                 \
        const T *x = k->x;                                                                                   \
        OT *out = k->out;                                                                                    \
        A *partial = k->partial;                                                                             \
        if (k->parts == 1 && k->p.nred == 0 && k->p.nkeep <= 1) {                                            \
            int64_t stride = k->p.nkeep ? k->p.kstride[0] : 0;                                               \
            for (int64_t o = begin; o < end; o++) {                                                          \
                A acc = NAME##_span(INIT, x + o * stride, out, o, 0, k->p.count, 0);                         \
                STORE(N, out[o], acc);                                                                       \
            }                                                                                                \
            return;                                                                                          \
        }                                                                                                    \
        for (int64_t it = begin; it < end; it++) {                                                           \
            bool whole = k->parts == 1;                                                                      \
            int64_t o = whole ? it : it / k->parts, r0 = whole ? 0 : it % k->parts * k->chunk;               \
            int64_t r1 = whole || r0 + k->chunk > k->p.count ? k->p.count : r0 + k->chunk;                   \
            A acc = NAME##_range(k, o, r0, r1);                                                              \
            if (whole) STORE(N, out[o], acc);                                                                \
            else partial[it] = acc;                                                                          \
        }                                                                                                    \
    }                                                                                                        \
    static void NAME##_combine(const rctx *k) {                                                           \
        OT *out = k->out;                                                                                 \
        const A *partial = k->partial;                                                                    \
        for (int64_t o = 0; o < k->p.outer; o++) {                                                        \
            A acc = partial[o * k->parts];                                                                \
            for (int64_t q = 1; q < k->parts; q++) MERGE(acc, partial[o * k->parts + q], ISNAN);          \
            STORE(N, out[o], acc);                                                                           \
        }                                                                                                 \
    }                                                                                                     \
    static void NAME##_cpu(const em_call *c, em_tensor *out) {                                            \
        static const reduce_fns fns = {NAME##_cols, NAME##_runs, NAME##_combine};           \
        A partial[SPLIT_OUTPUTS * SPLIT_PARTS];                                                           \
        run_reduce(c, out, partial, &fns);                                                                \
    }

/* An element of dtype suffix N as the kernels compare and add it (WIDEN_N), and an accumulator written to an
 * output element d (ROUND_N): bfloat16 and float16 are widened to float32, and their results, accumulated
 * as float32's are (sums and products in double, extremes in float32), are rounded once. */
#define WIDEN_f32(v) (v)
#define WIDEN_f64(v) (v)
#define WIDEN_i32(v) (v)
#define WIDEN_i64(v) (v)
#define WIDEN_u8(v) (v)
#define WIDEN_b8(v) (v)
#define WIDEN_i8(v) (v)
#define WIDEN_i16(v) (v)
#define WIDEN_u16(v) (v)
#define WIDEN_bf16(v) em_bf16_to_f32(v)
#define WIDEN_f16(v) em_f16_to_f32(v)
#define ROUND_f32(d, acc) ((__typeof__(d))(acc))
#define ROUND_f64 ROUND_f32
#define ROUND_i32 ROUND_f32
#define ROUND_i64 ROUND_f32
#define ROUND_u8 ROUND_f32
#define ROUND_b8 ROUND_f32
#define ROUND_i8 ROUND_f32
#define ROUND_i16 ROUND_f32
#define ROUND_u16 ROUND_f32
#define ROUND_bf16(d, acc) em_convert_bf16((double)(acc))
#define ROUND_f16(d, acc) em_convert_f16((double)(acc))

#define NEVER_NAN(v) 0
#define LOAD_VALUE(N, v, oi) WIDEN_##N(v)
#define LOAD_DOUBLE(N, v, oi) ((double)WIDEN_##N(v))
#define LOAD_U64(N, v, oi) ((uint64_t)(v))
/* log_sum_exp's second pass: out holds the maximum (em_lse_term: lib/reduce_plan.h). */
#define LOAD_SHIFTED_EXP(N, v, oi) em_lse_term((double)WIDEN_##N(v), (double)WIDEN_##N(out[oi]))

#define STEP_ADD(acc, v, r, ISNAN) ((acc) += (v))
#define MERGE_ADD(acc, p, ISNAN) ((acc) += (p))
#define STEP_MUL(acc, v, r, ISNAN) ((acc) *= (v))
#define MERGE_MUL(acc, p, ISNAN) ((acc) *= (p))
/* max and min propagate NaN, like NumPy. */
#define STEP_MAX(acc, v, r, ISNAN) ((acc) = (v) > (acc) || ISNAN(v) ? (v) : (acc))
#define MERGE_MAX(acc, p, ISNAN) STEP_MAX(acc, p, 0, ISNAN)
#define STEP_MIN(acc, v, r, ISNAN) ((acc) = (v) < (acc) || ISNAN(v) ? (v) : (acc))
#define MERGE_MIN(acc, p, ISNAN) STEP_MIN(acc, p, 0, ISNAN)
/* argmax and argmin keep the first best (the first NaN, like NumPy). */
#define BETTER_GT(a, b, ISNAN) ((a) > (b) || (ISNAN(a) && !ISNAN(b)))
#define BETTER_LT(a, b, ISNAN) ((a) < (b) || (ISNAN(a) && !ISNAN(b)))
#define STEP_ARG(acc, v, r, ISNAN, BETTER)                                                    \
    do {                                                                                      \
        if ((acc).i < 0 || BETTER(v, (acc).v, ISNAN)) (acc) = (__typeof__(acc)){(v), (r)};        \
    } while (0)
#define MERGE_ARG(acc, p, ISNAN, BETTER)                                                      \
    do {                                                                                      \
        if ((p).i >= 0 && ((acc).i < 0 || BETTER((p).v, (acc).v, ISNAN))) (acc) = (p);       \
    } while (0)
#define STEP_ARGMAX(acc, v, r, ISNAN) STEP_ARG(acc, v, r, ISNAN, BETTER_GT)
#define MERGE_ARGMAX(acc, p, ISNAN) MERGE_ARG(acc, p, ISNAN, BETTER_GT)
#define STEP_ARGMIN(acc, v, r, ISNAN) STEP_ARG(acc, v, r, ISNAN, BETTER_LT)
#define MERGE_ARGMIN(acc, p, ISNAN) MERGE_ARG(acc, p, ISNAN, BETTER_LT)

/* bool: the byte is 0 or 1 */
#define STEP_OR(acc, v, r, ISNAN) ((acc) |= (v))
#define MERGE_OR(acc, p, ISNAN) ((acc) |= (p))
#define STEP_AND(acc, v, r, ISNAN) ((acc) &= (v))
#define MERGE_AND(acc, p, ISNAN) ((acc) &= (p))

#define STORE_CAST(N, d, acc) ((d) = ROUND_##N(d, acc))
#define STORE_INDEX(N, d, acc) ((d) = (acc).i)
/* log_sum_exp: max + log(sum(exp(x - max))); an infinite or NaN max is the result. */
#define STORE_LSE(N, d, acc) ((d) = ROUND_##N(d, em_lse_result(WIDEN_##N(d), (acc))))

/* dtype suffix, enum, C type, sum accumulator and its loader, lowest, highest, NaN test, the type values are
 * compared in, whose hooks sum, max and min take (F32 or ELEMENTS) */
#define FLOAT_TYPES(X)                                                                     \
    X(f32, EM_F32, float, double, LOAD_DOUBLE, -INFINITY, INFINITY, isnan, float, F32)          \
    X(f64, EM_F64, double, double, LOAD_DOUBLE, -INFINITY, INFINITY, isnan, double, ELEMENTS)        \
    X(bf16, EM_BF16, uint16_t, double, LOAD_DOUBLE, -INFINITY, INFINITY, isnan, float, ELEMENTS)     \
    X(f16, EM_F16, uint16_t, double, LOAD_DOUBLE, -INFINITY, INFINITY, isnan, float, ELEMENTS)
#define NUMERIC_TYPES(X)                                                                   \
    FLOAT_TYPES(X)                                                                         \
    X(i32, EM_I32, int32_t, uint64_t, LOAD_U64, INT32_MIN, INT32_MAX, NEVER_NAN, int32_t, ELEMENTS)   \
    X(i64, EM_I64, int64_t, uint64_t, LOAD_U64, INT64_MIN, INT64_MAX, NEVER_NAN, int64_t, ELEMENTS)   \
    X(u8, EM_U8, uint8_t, uint64_t, LOAD_U64, 0, UINT8_MAX, NEVER_NAN, uint8_t, ELEMENTS)             \
    X(i8, EM_I8, int8_t, uint64_t, LOAD_U64, INT8_MIN, INT8_MAX, NEVER_NAN, int8_t, ELEMENTS)         \
    X(i16, EM_I16, int16_t, uint64_t, LOAD_U64, INT16_MIN, INT16_MAX, NEVER_NAN, int16_t, ELEMENTS)   \
    X(u16, EM_U16, uint16_t, uint64_t, LOAD_U64, 0, UINT16_MAX, NEVER_NAN, uint16_t, ELEMENTS)

#define DEF_SUM(N, E, T, S, LS, LO, HI, ISNAN, V, SK) \
    DEFINE_REDUCE(sum_##N, N, T, T, S, S, (S)0, LS, STEP_ADD, MERGE_ADD, STORE_CAST, ISNAN, 8, SK##_SUM_RUN, SK##_SUM_COLS)
#define DEF_PROD(N, E, T, S, LS, LO, HI, ISNAN, V, SK) \
    DEFINE_REDUCE(prod_##N, N, T, T, S, S, (S)1, LS, STEP_MUL, MERGE_MUL, STORE_CAST, ISNAN, 8, ELEMENTS_RUN, ELEMENTS_COLS)
#define DEF_MAX(N, E, T, S, LS, LO, HI, ISNAN, V, SK) \
    DEFINE_REDUCE(max_##N, N, T, T, V, V, (V)(LO), LOAD_VALUE, STEP_MAX, MERGE_MAX, STORE_CAST, ISNAN, 32, SK##_MAX_RUN, ELEMENTS_COLS)
#define DEF_MIN(N, E, T, S, LS, LO, HI, ISNAN, V, SK) \
    DEFINE_REDUCE(min_##N, N, T, T, V, V, (V)(HI), LOAD_VALUE, STEP_MIN, MERGE_MIN, STORE_CAST, ISNAN, 32, SK##_MIN_RUN, ELEMENTS_COLS)
#define DEF_ARG(N, E, T, S, LS, LO, HI, ISNAN, V, SK)                                                               \
    typedef struct {                                                                                            \
        V v;                                                                                                    \
        int64_t i;                                                                                              \
    } arg_##N;                                                                                                  \
    DEFINE_REDUCE(argmax_##N, N, T, int64_t, V, arg_##N, ((arg_##N){0, -1}), LOAD_VALUE, STEP_ARGMAX,          \
                  MERGE_ARGMAX, STORE_INDEX, ISNAN, 1, ELEMENTS_RUN, ELEMENTS_COLS)                                                          \
    DEFINE_REDUCE(argmin_##N, N, T, int64_t, V, arg_##N, ((arg_##N){0, -1}), LOAD_VALUE, STEP_ARGMIN,          \
                  MERGE_ARGMIN, STORE_INDEX, ISNAN, 1, ELEMENTS_RUN, ELEMENTS_COLS)
#define DEF_LSE(N, E, T, S, LS, LO, HI, ISNAN, V, SK)                                                               \
    DEFINE_REDUCE(lse_pass_##N, N, T, T, double, double, 0.0, LOAD_SHIFTED_EXP, STEP_ADD, MERGE_ADD, STORE_LSE, \
                  ISNAN, 8, ELEMENTS_RUN, ELEMENTS_COLS)                                                                                  \
    static void lse_##N##_cpu(const em_call *c, em_tensor *out) {                                               \
        max_##N##_cpu(c, out);                                                                                  \
        lse_pass_##N##_cpu(c, out);                                                                             \
    }

NUMERIC_TYPES(DEF_SUM)
NUMERIC_TYPES(DEF_PROD)
NUMERIC_TYPES(DEF_MAX)
NUMERIC_TYPES(DEF_MIN)
NUMERIC_TYPES(DEF_ARG)
FLOAT_TYPES(DEF_LSE)
DEFINE_REDUCE(reduce_any, b8, uint8_t, uint8_t, uint8_t, uint8_t, 0, LOAD_VALUE, STEP_OR, MERGE_OR, STORE_CAST, NEVER_NAN,
              32, ELEMENTS_RUN, ELEMENTS_COLS)
DEFINE_REDUCE(reduce_all, b8, uint8_t, uint8_t, uint8_t, uint8_t, 1, LOAD_VALUE, STEP_AND, MERGE_AND, STORE_CAST,
              NEVER_NAN, 32, ELEMENTS_RUN, ELEMENTS_COLS)

/* One row kernel per op, dispatching on the input dtype (checked by the shape rule). */
#define ENTRY_SUM(N, E, ...) [E] = sum_##N##_cpu,
#define ENTRY_PROD(N, E, ...) [E] = prod_##N##_cpu,
#define ENTRY_MAX(N, E, ...) [E] = max_##N##_cpu,
#define ENTRY_MIN(N, E, ...) [E] = min_##N##_cpu,
#define ENTRY_ARGMAX(N, E, ...) [E] = argmax_##N##_cpu,
#define ENTRY_ARGMIN(N, E, ...) [E] = argmin_##N##_cpu,
#define ENTRY_LSE(N, E, ...) [E] = lse_##N##_cpu,
#define DISPATCH(OP, TYPES, ENTRY)                                                        \
    static void OP##_cpu(const em_call *c, em_tensor *out) {                              \
        static em_kernel_fn const k[EM_DTYPE_COUNT] = {TYPES(ENTRY)};                     \
        k[c->in[0]->dtype](c, out);                                                       \
    }
DISPATCH(sum, NUMERIC_TYPES, ENTRY_SUM)
DISPATCH(prod, NUMERIC_TYPES, ENTRY_PROD)
DISPATCH(max, NUMERIC_TYPES, ENTRY_MAX)
DISPATCH(min, NUMERIC_TYPES, ENTRY_MIN)
DISPATCH(argmax, NUMERIC_TYPES, ENTRY_ARGMAX)
DISPATCH(argmin, NUMERIC_TYPES, ENTRY_ARGMIN)
DISPATCH(log_sum_exp, FLOAT_TYPES, ENTRY_LSE)

/* ---- shape rule ---- */


static int reduce_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    uint64_t mask = (uint64_t)c->a->i[0];
    em_op op = c->def->id;
    char b[160];
    if (mask >> x->ndim)
        return em__op_error(c, "axes mask %#" PRIx64 " exceeds the rank %d of input %s", mask, x->ndim,
                            em__tshape(x, b, sizeof b));
    if (!(c->def->dtypes & EM_DT(x->dtype)))
        return em__op_error(c, "input of dtype %s is not supported (%s)", em_dtype_name((em_dtype)x->dtype),
                            op == EM_OP_LOG_SUM_EXP                          ? "float32 or float64"
                            : op == EM_OP_REDUCE_ANY || op == EM_OP_REDUCE_ALL ? "bool; compare with em_not_equal first"
                                                                              : "a numeric dtype; cast bool first");
    *ndim = em_reduce_shape(x->ndim, x->shape, mask, (int)c->a->i[1], shape);
    if (op == EM_OP_MAX || op == EM_OP_MIN || op == EM_OP_ARGMAX || op == EM_OP_ARGMIN) {
        int64_t nout = 1;
        for (int d = 0; d < *ndim; d++) nout *= shape[d];
        for (int d = 0; d < x->ndim; d++)
            if ((mask >> d & 1u) && x->shape[d] == 0 && nout > 0)
                return em__op_error(c, "cannot reduce over axis %d of size 0 of input %s (no identity)", d,
                                    em__tshape(x, b, sizeof b));
    }
    *dtype = op == EM_OP_ARGMAX || op == EM_OP_ARGMIN ? EM_I64 : (em_dtype)x->dtype;
    return 0;
}

/* ---- gradients ---- */

/* The input's shape with the reduced axes kept as size 1. */
static em_shape keep_shape(const em_call *c) {
    em_shape s = {.ndim = c->in[0]->ndim};
    em_reduce_shape(c->in[0]->ndim, c->in[0]->shape, (uint64_t)c->a->i[0], 1, s.dims);
    return s;
}

static int mask_axes(const em_call *c, int *axes) {
    int n = 0;
    for (int d = 0; d < c->in[0]->ndim; d++)
        if ((uint64_t)c->a->i[0] >> d & 1u) axes[n++] = d;
    return n;
}

static int sum_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = em_broadcast_to(em_reshape(gout, keep_shape(c)), em__shape_of(c->in[0]));
    return gin[0] ? 0 : -1;
}

/* The gradient is split evenly among the elements equal to the extreme (like TensorFlow). */
static int extreme_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)need;
    em_tensor *x = c->in[0];
    em_shape ks = keep_shape(c);
    int axes[EM_MAX_DIMS], naxes = mask_axes(c, axes);
    em_tensor *hit = em_cast(em_equal(x, em_reshape(out, ks)), (em_dtype)x->dtype);
    em_tensor *count = naxes ? em_sum(hit, naxes, axes, true) : hit;
    gin[0] = em_div(em_mul(hit, em_reshape(gout, ks)), count);
    return gin[0] ? 0 : -1;
}

/* g * out / x: where x has a zero the gradient is not finite. */
static int prod_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)need;
    em_shape ks = keep_shape(c);
    gin[0] = em_div(em_mul(em_reshape(gout, ks), em_reshape(out, ks)), c->in[0]);
    return gin[0] ? 0 : -1;
}

static int log_sum_exp_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)need;
    em_shape ks = keep_shape(c);
    gin[0] = em_mul(em_reshape(gout, ks), em_exp(em_sub(c->in[0], em_reshape(out, ks))));
    return gin[0] ? 0 : -1;
}

/* The rows of reduce.def: one shape rule; max and min share a gradient. */
#define max_grad extreme_grad
#define min_grad extreme_grad
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, reduce_infer, name##_cpu, NULL, name##_grad)
#include "reduce.def"
#undef EM_OP

/* ---- public functions ---- */

int64_t em__axes_mask(const char *op, const em_tensor *x, int naxes, const int *axes) {
    char b[160];
    if (naxes < 0 || (naxes && !axes)) {
        em__error("%s: %d axes given for input of shape %s", op, naxes, em__tshape(x, b, sizeof b));
        return -1;
    }
    if (naxes == 0) return (int64_t)((1u << x->ndim) - 1u);
    int64_t mask = 0;
    for (int k = 0; k < naxes; k++) {
        int a = axes[k] < 0 ? axes[k] + x->ndim : axes[k];
        if (a < 0 || a >= x->ndim) {
            em__error("%s: axis %d is out of range for input of shape %s (rank %d)", op, axes[k],
                      em__tshape(x, b, sizeof b), x->ndim);
            return -1;
        }
        if (mask >> a & 1) {
            em__error("%s: axis %d is repeated in the axes for input of shape %s", op, axes[k],
                      em__tshape(x, b, sizeof b));
            return -1;
        }
        mask |= (int64_t)1 << a;
    }
    return mask;
}

static em_tensor *reduce(em_op op, em_tensor *x, int naxes, const int *axes, bool keepdims) {
    const char *name = em__op_def(op)->name;
    if (!x) return em__null_input(name);
    int64_t mask = em__axes_mask(name, x, naxes, axes);
    if (mask < 0) return NULL;
    em_attrs a = {.ni = 2, .i = {mask, keepdims}};
    return em__apply(op, 1, &x, &a);
}

em_tensor *em_sum(em_tensor *x, int naxes, const int *axes, bool keepdims) {
    return reduce(EM_OP_SUM, x, naxes, axes, keepdims);
}
em_tensor *em_max(em_tensor *x, int naxes, const int *axes, bool keepdims) {
    return reduce(EM_OP_MAX, x, naxes, axes, keepdims);
}
em_tensor *em_min(em_tensor *x, int naxes, const int *axes, bool keepdims) {
    return reduce(EM_OP_MIN, x, naxes, axes, keepdims);
}
em_tensor *em_prod(em_tensor *x, int naxes, const int *axes, bool keepdims) {
    return reduce(EM_OP_PROD, x, naxes, axes, keepdims);
}
em_tensor *em_log_sum_exp(em_tensor *x, int naxes, const int *axes, bool keepdims) {
    return reduce(EM_OP_LOG_SUM_EXP, x, naxes, axes, keepdims);
}
em_tensor *em_reduce_any(em_tensor *x, int naxes, const int *axes, bool keepdims) {
    return reduce(EM_OP_REDUCE_ANY, x, naxes, axes, keepdims);
}
em_tensor *em_reduce_all(em_tensor *x, int naxes, const int *axes, bool keepdims) {
    return reduce(EM_OP_REDUCE_ALL, x, naxes, axes, keepdims);
}
em_tensor *em_argmax(em_tensor *x, int axis) { return reduce(EM_OP_ARGMAX, x, EM_AXES(axis), false); }
em_tensor *em_argmin(em_tensor *x, int axis) { return reduce(EM_OP_ARGMIN, x, EM_AXES(axis), false); }

/* sum / count; integer means truncate (like TensorFlow); an empty float mean
 * is NaN. The count is an op (em__count), so a traced graph fed another batch
 * size divides by the count it has at run time. */
em_tensor *em_mean(em_tensor *x, int naxes, const int *axes, bool keepdims) {
    if (!x) return em__null_input("mean");
    int64_t mask = em__axes_mask("mean", x, naxes, axes);
    if (mask < 0) return NULL;
    return em_div(em_sum(x, naxes, axes, keepdims), em__count(x, mask));
}
