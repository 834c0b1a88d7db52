/* Random ops: 0-input ops that draw from the thread's counter-based stream.
 *
 * Attributes (all three rows): i[0..ni) the output shape, dtype (float32 or
 * float64), f[0] and f[1] the parameters (mean and stddev, or lo and hi),
 * seed and counter the stream position of element 0. The public functions
 * reserve numel positions of the thread's stream, so element i is a pure
 * function of (seed, counter + i) (lib/philox.h): identical for any thread
 * count and on a GPU, and a traced graph replays the same draw. */
#include "../gpu.h"
#include "../internal.h"
#include "../philox.h"


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
/* name_cpu for each row of random.def: its kernels name_f32 and name_f64. */
#define EM_OP(ID, name, ...) \
    static void name##_cpu(const em_call *c, em_tensor *out) { run_draw(c, out, name##_f32, name##_f64); }
#include "random.def"
#undef EM_OP

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, random_infer, name##_cpu, NULL, NULL)
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
