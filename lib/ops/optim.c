/* apply_updates: one optimizer step as one op, whose kernel runs one fused
 * pass over each variable's memory (the optimizers, their slots and
 * schedules: optim.c). bfloat16 and float16 variables keep slots of their
 * dtype and are updated with float32 arithmetic, rounded once per step. The rules themselves are lib/optim_math.h's, shared
 * with the GPU's update kernels. */
#include "optim.h"

#include "narrow.h"

#include <math.h>

/* ---- fused update kernels ---- */

typedef struct {
    void *w;
    const void *g;
    void *s0, *s1, *s2;
    em_update_coeffs k; /* the step's scalars, shared with the GPU's update kernels (lib/gpu.h) */
    em_range_fn kernel;
    em_range_fn wide;   /* a narrow variable's: the float32 kernel narrow_update runs on its tiles */
    em_dtype dtype;
} upd;

/* Each loop is elementwise (no element depends on another), so `omp simd`
 * is safe even when a gradient is its own variable: each element's values
 * are read (the gradient first) before any is written. The rules themselves
 * are lib/optim_math.h's, shared with the GPU's update kernels, computing in
 * T (RSUF its suffix) on elements stored as S: LD widens one, ST rounds a
 * result back (bfloat16 in the loop itself: a shift and an add). */
#define SIMD _Pragma("omp simd")
#define ID(v) (v)
#define KERNELS(S, SUF, T, RSUF, LD, ST)                                                                               \
    EM_HOT static void sgd_##SUF(void *c_, int64_t b, int64_t e) {                                                     \
        const upd *c = c_;                                                                                             \
        S *w = c->w;                                                                                                   \
        const S *g = c->g;                                                                                             \
        em_optim_##RSUF k;                                                                                             \
        em_optim_scalars_##RSUF(&c->k, &k);                                                                            \
        SIMD for (int64_t i = b; i < e; i++) {                                                                         \
            T gi = LD(g[i]), wi = LD(w[i]);                                                                            \
            em_optim_sgd_##RSUF(&wi, gi, k);                                                                           \
            w[i] = ST(wi);                                                                                             \
        }                                                                                                              \
    }                                                                                                                  \
    EM_HOT static void momentum_##SUF(void *c_, int64_t b, int64_t e) {                                                \
        const upd *c = c_;                                                                                             \
        S *w = c->w, *a = c->s0;                                                                                       \
        const S *g = c->g;                                                                                             \
        em_optim_##RSUF k;                                                                                             \
        em_optim_scalars_##RSUF(&c->k, &k);                                                                            \
        SIMD for (int64_t i = b; i < e; i++) {                                                                         \
            T gi = LD(g[i]), wi = LD(w[i]), ai = LD(a[i]);                                                             \
            em_optim_momentum_##RSUF(&wi, &ai, gi, k);                                                                 \
            w[i] = ST(wi), a[i] = ST(ai);                                                                              \
        }                                                                                                              \
    }                                                                                                                  \
    EM_HOT static void adagrad_##SUF(void *c_, int64_t b, int64_t e) {                                                 \
        const upd *c = c_;                                                                                             \
        S *w = c->w, *a = c->s0;                                                                                       \
        const S *g = c->g;                                                                                             \
        em_optim_##RSUF k;                                                                                             \
        em_optim_scalars_##RSUF(&c->k, &k);                                                                            \
        SIMD for (int64_t i = b; i < e; i++) {                                                                         \
            T gi = LD(g[i]), wi = LD(w[i]), ai = LD(a[i]);                                                             \
            em_optim_adagrad_##RSUF(&wi, &ai, gi, k);                                                                  \
            w[i] = ST(wi), a[i] = ST(ai);                                                                              \
        }                                                                                                              \
    }                                                                                                                  \
    EM_HOT static void adagrad_da_##SUF(void *c_, int64_t b, int64_t e) {                                              \
        const upd *c = c_;                                                                                             \
        S *w = c->w, *ga = c->s0, *g2 = c->s1;                                                                         \
        const S *g = c->g;                                                                                             \
        em_optim_##RSUF k;                                                                                             \
        em_optim_scalars_##RSUF(&c->k, &k);                                                                            \
        SIMD for (int64_t i = b; i < e; i++) {                                                                         \
            T gi = LD(g[i]), wi = LD(w[i]), gai = LD(ga[i]), g2i = LD(g2[i]);                                          \
            em_optim_adagrad_da_##RSUF(&wi, &gai, &g2i, gi, k);                                                        \
            w[i] = ST(wi), ga[i] = ST(gai), g2[i] = ST(g2i);                                                           \
        }                                                                                                              \
    }                                                                                                                  \
    EM_HOT static void rmsprop_##SUF(void *c_, int64_t b, int64_t e) {                                                 \
        const upd *c = c_;                                                                                             \
        S *w = c->w, *ms = c->s0, *mom = c->s1, *mg = c->s2;                                                           \
        const S *g = c->g;                                                                                             \
        em_optim_##RSUF k;                                                                                             \
        em_optim_scalars_##RSUF(&c->k, &k);                                                                            \
        /* one loop each way, so the per-element rule's branch folds away */                                           \
        if (c->k.centered)                                                                                             \
            SIMD for (int64_t i = b; i < e; i++) {                                                                     \
                T gi = LD(g[i]), wi = LD(w[i]), msi = LD(ms[i]), momi = LD(mom[i]), mgi = LD(mg[i]);                   \
                em_optim_rmsprop_##RSUF(&wi, &msi, &momi, &mgi, gi, k, true);                                          \
                w[i] = ST(wi), ms[i] = ST(msi), mom[i] = ST(momi), mg[i] = ST(mgi);                                    \
            }                                                                                                          \
        else                                                                                                           \
            SIMD for (int64_t i = b; i < e; i++) {                                                                     \
                T gi = LD(g[i]), wi = LD(w[i]), msi = LD(ms[i]), momi = LD(mom[i]);                                    \
                em_optim_rmsprop_##RSUF(&wi, &msi, &momi, NULL, gi, k, false);                                         \
                w[i] = ST(wi), ms[i] = ST(msi), mom[i] = ST(momi);                                                     \
            }                                                                                                          \
    }                                                                                                                  \
    EM_HOT static void adam_##SUF(void *c_, int64_t b, int64_t e) {                                                    \
        const upd *c = c_;                                                                                             \
        S *w = c->w, *m = c->s0, *v = c->s1;                                                                           \
        const S *g = c->g;                                                                                             \
        em_optim_##RSUF k;                                                                                             \
        em_optim_scalars_##RSUF(&c->k, &k);                                                                            \
        SIMD for (int64_t i = b; i < e; i++) {                                                                         \
            T gi = LD(g[i]), wi = LD(w[i]), mi = LD(m[i]), vi = LD(v[i]);                                              \
            em_optim_adam_##RSUF(&wi, &mi, &vi, gi, k);                                                                \
            w[i] = ST(wi), m[i] = ST(mi), v[i] = ST(vi);                                                               \
        }                                                                                                              \
    }
KERNELS(float, f32, float, f32, ID, ID)
KERNELS(double, f64, double, f64, ID, ID)
KERNELS(uint16_t, bf16, float, f32, em_bf16_to_f32, em_bf16_from_f32)

/* By rule, then float32, float64, bfloat16. */
static const em_range_fn kernels[][3] = {
    [OPT_SGD] = {sgd_f32, sgd_f64, sgd_bf16},
    [OPT_MOMENTUM] = {momentum_f32, momentum_f64, momentum_bf16},
    [OPT_ADAGRAD] = {adagrad_f32, adagrad_f64, adagrad_bf16},
    [OPT_ADAGRAD_DA] = {adagrad_da_f32, adagrad_da_f64, adagrad_da_bf16},
    [OPT_RMSPROP] = {rmsprop_f32, rmsprop_f64, rmsprop_bf16},
    [OPT_ADAM] = {adam_f32, adam_f64, adam_bf16},
    [OPT_ADAMW] = {adam_f32, adam_f64, adam_bf16},
};

/* A float16 variable, its gradient and its slots (all of its dtype; float16's software conversions do not
 * vectorize in the rules' loops): the float32 kernel on tiles widened on the stack (by F16C or AVX-512
 * where the CPU has them), the variable and the slots rounded back once per step. */
static void narrow_update(void *ctx, int64_t b, int64_t e) {
    const upd *u = ctx;
    float tile[5][EM_NARROW_TILE];
    uint16_t *const at[5] = {u->w, (uint16_t *)(uintptr_t)u->g, u->s0, u->s1, u->s2}; /* the gradient is only read */
    upd t = *u;
    t.w = tile[0], t.g = tile[1], t.s0 = tile[2], t.s1 = tile[3], t.s2 = tile[4];
    for (int64_t i = b; i < e; i += EM_NARROW_TILE) {
        const int64_t m = e - i < EM_NARROW_TILE ? e - i : EM_NARROW_TILE;
        for (int k = 0; k < 5; k++)
            if (at[k]) em__narrow_widen(u->dtype, at[k] + i, 1, tile[k], m);
        u->wide(&t, 0, m);
        for (int k = 0; k < 5; k++)
            if (at[k] && k != 1) em__narrow_round(u->dtype, tile[k], at[k] + i, 1, m);
    }
}

#define UPDATE_GRAIN 16384

/* Runs an update kernel with denormals flushed to zero (as TensorFlow's
 * thread pools do): slots of weights whose gradient is 0 decay geometrically
 * into the denormal range, where each multiply costs ~100 cycles. MXCSR is per
 * thread, so each chunk sets it and puts the caller's value back. */
static void update_range(void *ctx, int64_t b, int64_t e) {
    const upd *u = ctx;
#if defined(__SSE__)
    unsigned csr = __builtin_ia32_stmxcsr();
    __builtin_ia32_ldmxcsr(csr | 0x8040); /* FTZ | DAZ */
    u->kernel(ctx, b, e);
    __builtin_ia32_ldmxcsr(csr);
#else
    u->kernel(ctx, b, e);
#endif
}

/* apply_updates: inputs step, lr, then per updated variable: the variable,
 * its gradient and its o->nslots slots. attrs: i[0] = variables, seed = the
 * optimizer's rule (a graph holding this node must be released before it). The
 * output is the new step count. */
static int apply_updates_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    (void)c;
    (void)shape;
    *dtype = EM_F64;
    *ndim = 0;
    return 0;
}

static void apply_updates_cpu(const em_call *c, em_tensor *out) {
    const em_update_rule *o = (const em_update_rule *)(uintptr_t)c->a->seed;
    double t = *(const double *)c->in[0]->data + 1, lr = *(double *)c->in[1]->data;
    if (o->schedule) *(double *)c->in[1]->data = lr = o->schedule_value(o->schedule, (int64_t)t - 1);
    static const em_update_kind update_kind[] = {
        [OPT_SGD] = EM_UPDATE_SGD,         [OPT_MOMENTUM] = EM_UPDATE_MOMENTUM, [OPT_ADAGRAD] = EM_UPDATE_ADAGRAD,
        [OPT_ADAGRAD_DA] = EM_UPDATE_ADAGRAD_DA, [OPT_RMSPROP] = EM_UPDATE_RMSPROP, [OPT_ADAM] = EM_UPDATE_ADAM,
        [OPT_ADAMW] = EM_UPDATE_ADAM,
    };
    upd u = {.k = {
                 .kind = update_kind[o->kind],
                 .lr = lr,
                 .momentum = o->momentum,
                 /* 1 - beta in double: in float32, 1 - 0.999f is off by 1e-5 relative */
                 .rho1 = 1 - o->decay,
                 .epsilon = o->epsilon,
                 .beta1c = 1 - o->beta1,
                 .beta2c = 1 - o->beta2,
                 .l1t = o->l1 * t,
                 .l2tlr = o->l2 * t * lr,
                 .keep = 1 - lr * o->weight_decay,
                 .nesterov = o->nesterov,
                 .centered = o->centered,
             }};
    if (o->kind == OPT_ADAM || o->kind == OPT_ADAMW) u.k.lr = lr * sqrt(1 - pow(o->beta2, t)) / (1 - pow(o->beta1, t));
    int per = 2 + o->nslots;
    const double keep = u.k.keep;
    for (int64_t i = 0; i < c->a->i[0]; i++) {
        em_tensor *const *in = c->in + 2 + i * per;
        /* the decay filter, asked at every update: a graph's replay asks it too */
        u.k.keep = o->decays && in[0]->var && !o->decays(in[0]->var->name, o->decays_ctx) ? 1 : keep;
        if (em__is_gpu(in[0]->device)) { /* a fused update kernel on the variable's GPU */
            em_gpu_tensor t[5], *slots[3];
            for (int k = 0; k < per; k++) t[k] = em__gpu_tensor(in[k]);
            for (int k = 0; k < o->nslots; k++) slots[k] = &t[2 + k];
            if (em__gpu->update(&u.k, &t[0], &t[1], slots, in[0]->device - EM_GPU_BASE)) return;
            continue;
        }
        u.w = in[0]->data;
        u.g = in[1]->data;
        u.s0 = o->nslots > 0 ? in[2]->data : NULL;
        u.s1 = o->nslots > 1 ? in[3]->data : NULL;
        u.s2 = o->nslots > 2 ? in[4]->data : NULL;
        u.dtype = (em_dtype)in[0]->dtype;
        u.wide = kernels[o->kind][0];
        u.kernel = u.dtype == EM_F16 ? narrow_update : kernels[o->kind][u.dtype == EM_F64 ? 1 : u.dtype == EM_BF16 ? 2 : 0];
        em__parallel_for(in[0]->numel, UPDATE_GRAIN, update_range, &u);
    }
    *(double *)c->in[0]->data = t;
    *(double *)out->data = t;
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, NULL, NULL)
#include "optim.def"
#undef EM_OP
