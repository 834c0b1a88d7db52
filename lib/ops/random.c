/* Random ops: 0-input ops that draw from the thread's counter-based stream,
 * and categorical, which samples rows of logits from it.
 *
 * Attributes (the three draws): i[0..ni) the output shape, dtype (float32 or
 * float64), f[0] and f[1] the parameters (mean and stddev, or lo and hi),
 * seed and counter the stream position of element 0. The public functions
 * reserve numel positions of the thread's stream, so element i is a pure
 * function of (seed, counter + i) (lib/philox.h): identical for any thread
 * count and on a GPU, and a traced graph replays the same draw. */
#include "../gpu.h"
#include "../internal.h"
#include "../philox.h"

#include <stdlib.h>


void em_set_seed(uint64_t seed) {
    em_thread *t = em__thread();
    if (!t) return;
    t->seed = seed;
    t->counter = 0;
}

uint64_t em__rng_reserve(uint64_t n) {
    em_thread *t = em__thread();
    if (!t) return 0;
    uint64_t first = t->counter;
    t->counter += n;
    return first;
}

static int random_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_attrs *a = c->a;
    if (a->dtype != EM_F32 && a->dtype != EM_F64)
        return em__op_error(c, "dtype %s is not supported (float32 or float64)", em_dtype_name((em_dtype)a->dtype));
    if (a->ni < 0 || a->ni > EM_MAX_DIMS) return em__op_error(c, "rank %d is out of range [0, %d]", a->ni, EM_MAX_DIMS);
    for (int d = 0; d < a->ni; d++) {
        if (a->i[d] < 0) return em__op_error(c, "dimension %d of the shape is negative (%lld)", d, (long long)a->i[d]);
        shape[d] = a->i[d];
    }
    bool uniform = c->def->id == EM_OP_RANDOM_UNIFORM;
    if (uniform && !(a->f[0] <= a->f[1])) return em__op_error(c, "lo (%g) must not exceed hi (%g)", a->f[0], a->f[1]);
    if (!uniform && !(a->f[1] >= 0)) return em__op_error(c, "stddev must be >= 0, got %g", a->f[1]);
    *dtype = (em_dtype)a->dtype;
    *ndim = a->ni;
    return 0;
}

typedef struct {
    void *out;
    uint64_t seed, counter;
    double p0, p1;
} draw_ctx;

/* One range kernel per (op, dtype): y[i] is lib/philox.h's value of the op at
 * position counter + i, from p0 and p1 in T. */
#define DRAW_KERNEL(NAME, T)                                                  \
    static void NAME(void *ctx, int64_t begin, int64_t end) {                 \
        const draw_ctx *r = ctx;                                              \
        T *y = r->out, p0 = (T)r->p0, p1 = (T)r->p1;                          \
        for (int64_t i = begin; i < end; i++)                                 \
            y[i] = em_rng_##NAME(r->seed, r->counter + (uint64_t)i, p0, p1); \
    }

/* The hot one (dropout): one Philox block gives four values; whole blocks in
 * the middle run as a branch-free loop the compiler vectorizes. */
EM_HOT static void random_uniform_f32(void *ctx, int64_t begin, int64_t end) {
    const draw_ctx *r = ctx;
    float *y = r->out, lo = (float)r->p0, width = (float)(r->p1 - r->p0);
    int64_t i = begin;
    for (; i < end && ((r->counter + (uint64_t)i) & 3); i++) /* up to the first block boundary */
        y[i] = em_rng_random_uniform_f32(r->seed, r->counter + (uint64_t)i, lo, width);
    uint64_t first = (r->counter + (uint64_t)i) >> 2;
    int64_t blocks = (end - i) / 4;
    float *out = y + i;
#pragma omp simd
    for (int64_t k = 0; k < blocks; k++) {
        em_philox4 b = em_philox_block(r->seed, first + (uint64_t)k, EM_PHILOX_LANES);
        for (int w = 0; w < 4; w++) out[4 * k + w] = em_rng_random_uniform_lane_f32(lo, width, b.v[w]);
    }
    for (i += 4 * blocks; i < end; i++)
        y[i] = em_rng_random_uniform_f32(r->seed, r->counter + (uint64_t)i, lo, width);
}
DRAW_KERNEL(random_uniform_f64, double)
DRAW_KERNEL(random_normal_f32, float)
DRAW_KERNEL(random_normal_f64, double)
DRAW_KERNEL(truncated_normal_f32, float)
DRAW_KERNEL(truncated_normal_f64, double)

static void run_draw(const em_call *c, em_tensor *out, em_range_fn f32, em_range_fn f64) {
    draw_ctx r = {out->data, c->a->seed, c->a->counter, c->a->f[0], c->a->f[1]};
    em__parallel_for(out->numel, 1 << 14, out->dtype == EM_F32 ? f32 : f64, &r);
}
/* name_cpu for each draw row of random.def: its kernels name_f32 and name_f64. */
#define DRAW_CPU(name) \
    static void name##_cpu(const em_call *c, em_tensor *out) { run_draw(c, out, name##_f32, name##_f64); }
DRAW_CPU(random_normal)
DRAW_CPU(random_uniform)
DRAW_CPU(truncated_normal)

/* ---- categorical: samples of each row of logits ---- */

static int categorical_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    char b[160];
    if (!em__is_float((em_dtype)x->dtype) || x->ndim != 2 || (x->shape[1] == 0 && x->shape[0] > 0))
        return em__op_error(c, "logits must be float32 or float64 [batch, classes] with classes > 0, got %s %s",
                            em_dtype_name((em_dtype)x->dtype), em__tshape(x, b, sizeof b));
    if (c->a->i[0] < 0) return em__op_error(c, "num_samples must be >= 0, got %lld", (long long)c->a->i[0]);
    *dtype = EM_I64;
    *ndim = 2;
    shape[0] = x->shape[0];
    shape[1] = c->a->i[0];
    return 0;
}

typedef struct {
    const void *logits;
    int64_t *out;
    int64_t classes, samples;
    uint64_t seed, counter;
} categorical_ctx;

#define CATEGORICAL_KERNEL(sfx, T)                                                                                     \
    static void categorical_##sfx(void *ctx, int64_t begin, int64_t end) {                                             \
        const categorical_ctx *r = ctx;                                                                                \
        const T *logits = r->logits;                                                                                   \
        for (int64_t i = begin; i < end; i++)                                                                          \
            r->out[i] = em_rng_categorical_##sfx(r->seed, r->counter + (uint64_t)i,                                    \
                                                 logits + i / r->samples * r->classes, r->classes);                    \
    }
CATEGORICAL_KERNEL(f32, float)
CATEGORICAL_KERNEL(f64, double)

static void categorical_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    categorical_ctx r = {x->data, out->data, x->shape[1], out->shape[1], c->a->seed, c->a->counter};
    int64_t grain = (1 << 14) / (r.classes + 1) + 1;
    em__parallel_for(out->numel, grain, x->dtype == EM_F32 ? categorical_f32 : categorical_f64, &r);
}
#define categorical_infer_fn categorical_infer
#define random_normal_infer_fn random_infer
#define random_uniform_infer_fn random_infer
#define truncated_normal_infer_fn random_infer

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer_fn, name##_cpu, NULL, NULL)
#include "random.def"
#undef EM_OP

static em_tensor *draw(em_op op, em_dtype dtype, em_shape shape, double p0, double p1) {
    em_attrs a = {.ni = shape.ndim, .dtype = (int)dtype, .f = {p0, p1}};
    uint64_t numel = 1;
    if (shape.ndim >= 0 && shape.ndim <= EM_MAX_DIMS)
        for (int d = 0; d < shape.ndim; d++) {
            a.i[d] = shape.dims[d];
            numel *= shape.dims[d] > 0 ? (uint64_t)shape.dims[d] : 0;
        }
    em_thread *t = em__thread();
    a.seed = t ? t->seed : 0;
    a.counter = em__rng_reserve(numel);
    return em__apply(op, 0, NULL, &a);
}

em_tensor *em_random_normal(em_dtype dtype, em_shape shape, double mean, double stddev) {
    return draw(EM_OP_RANDOM_NORMAL, dtype, shape, mean, stddev);
}
em_tensor *em_random_uniform(em_dtype dtype, em_shape shape, double lo, double hi) {
    return draw(EM_OP_RANDOM_UNIFORM, dtype, shape, lo, hi);
}
em_tensor *em_truncated_normal(em_dtype dtype, em_shape shape, double mean, double stddev) {
    return draw(EM_OP_TRUNCATED_NORMAL, dtype, shape, mean, stddev);
}

em_tensor *em_categorical(em_tensor *logits, int64_t num_samples) {
    if (!logits) return em__null_input("categorical");
    em_attrs a = {.ni = 1, .i = {num_samples}};
    em_thread *t = em__thread();
    a.seed = t ? t->seed : 0;
    int64_t rows = logits->ndim == 2 ? logits->shape[0] : 0;
    a.counter = em__rng_reserve(num_samples > 0 && rows > 0 ? (uint64_t)rows * (uint64_t)num_samples : 0);
    return em__apply(EM_OP_CATEGORICAL, 1, &logits, &a);
}

/* Sorts draws by their key, ties (never in practice) by position. */
typedef struct {
    uint64_t key;
    int64_t at;
} shuffle_key;
static int by_key(const void *a, const void *b) {
    const shuffle_key *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->at > y->at) - (x->at < y->at);
}

em_tensor *em_random_shuffle(em_tensor *x) {
    char b[160];
    if (!x) return em__null_input("random_shuffle");
    em_thread *t = em__thread();
    if (x->ndim < 1) {
        em__error("random_shuffle: x must have at least 1 dim, got %s", em__tshape(x, b, sizeof b));
        return NULL;
    }
    if (t && t->trace) {
        em__error("random_shuffle: its permutation of x %s is drawn eagerly; a traced graph would replay one "
                  "permutation, so shuffle outside the trace",
                  em__tshape(x, b, sizeof b));
        return NULL;
    }
    int64_t n = x->shape[0];
    uint64_t seed = t ? t->seed : 0, counter = em__rng_reserve((uint64_t)n);
    shuffle_key *keys = malloc(sizeof *keys * (size_t)(n ? n : 1));
    int64_t *perm = malloc(sizeof *perm * (size_t)(n ? n : 1));
    em_tensor *out = NULL;
    if (keys && perm) {
        for (int64_t i = 0; i < n; i++) {
            em_philox4 r = em_philox_block(seed, counter + (uint64_t)i, 0);
            keys[i] = (shuffle_key){(uint64_t)r.v[0] << 32 | r.v[1], i};
        }
        qsort(keys, (size_t)n, sizeof *keys, by_key);
        for (int64_t i = 0; i < n; i++) perm[i] = keys[i].at;
        out = em_gather(x, em_tensor_from(EM_I64, EM_SHAPE(n), perm), 0);
    } else {
        em__error("random_shuffle: out of memory for the permutation of %lld rows", (long long)n);
    }
    free(keys);
    free(perm);
    return out;
}
