/* Op microbenchmarks beside their baselines, same thread count, same run:
 *   matmul GFLOP/s via em_matmul vs bli_sgemm called directly (square sizes and
 *     the MNIST MLP's forward and backward shapes),
 *   matmul 1024^3 in bfloat16 and float16 against float32 (GFLOP/s, time ratio)
 *     on each of their CPU routes (lib/ops/gemm_narrow.c),
 *   em_add GB/s on 16M floats vs a plain C loop,
 *   em_sum (all axes, axis 0, axis 1) and em_max GB/s vs plain C loops, up to 1 GiB,
 *   em_exp, em_sigmoid and em_tanh GB/s on 1 GiB vs a plain copy loop,
 *   conv2d forward and backward times at the CNN example's shapes.
 *
 *   build/bench/ops [threads [section...]]   (default: EM_NUM_THREADS, else all cores; sections: matmul,
 *                                             narrow, add, reduce, unary, conv; default all)
 *
 * Each figure is the best of several rounds; em and the baseline alternate
 * rounds so that both see the same machine state. */
#include <ember.h>

#include "ops/gemm_narrow.h" /* the narrow routes, to force and name them (built with -Ilib) */

#include <blis.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef void (*bench_fn)(void *ctx);

/* Seconds per call of f: calls batched into samples of >= 20 ms, best of
 * `rounds` samples. */
static double per_call(bench_fn f, void *ctx, int rounds) {
    f(ctx); /* warm up: page faults, BLIS's packing buffers */
    int reps = 1;
    for (;;) {
        double t = now();
        for (int i = 0; i < reps; i++) f(ctx);
        if (now() - t >= 0.02 || reps >= 1 << 20) break;
        reps *= 2;
    }
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t = now();
        for (int i = 0; i < reps; i++) f(ctx);
        double s = (now() - t) / reps;
        if (s < best) best = s;
    }
    return best;
}

/* ---- matmul ---- */

typedef struct {
    em_tensor *a, *b;
    bool ta, tb;
    int64_t m, n, k;
    float *c; /* the direct call's output */
} mm_case;

static void mm_em(void *ctx) {
    mm_case *p = ctx;
    em_scope_begin();
    em_matmul_t(p->a, p->b, p->ta, p->tb);
    em_scope_end();
}

static void mm_blis(void *ctx) {
    mm_case *p = ctx;
    float one = 1, zero = 0;
    /* row-major A (m x k, or k x m when transposed) and B, as em_matmul passes them */
    inc_t rsa = p->ta ? 1 : p->k, csa = p->ta ? p->m : 1, rsb = p->tb ? 1 : p->n, csb = p->tb ? p->k : 1;
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, p->m, p->n, p->k, &one, (float *)em_data(p->a), rsa, csa,
              (float *)em_data(p->b), rsb, csb, &zero, p->c, p->n, 1);
}

static void matmul_row(const char *label, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
    em_scope_begin();
    mm_case p = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k};
    p.a = em_random_uniform(EM_F32, ta ? EM_SHAPE(k, m) : EM_SHAPE(m, k), -1, 1);
    p.b = em_random_uniform(EM_F32, tb ? EM_SHAPE(n, k) : EM_SHAPE(k, n), -1, 1);
    p.c = aligned_alloc(64, (size_t)(m * n) * sizeof(float) + 64);
    double flops = 2.0 * (double)m * (double)n * (double)k;
    int rounds = flops > 4e9 ? 3 : 7;
    double t_em = 1e30, t_blis = 1e30;
    for (int r = 0; r < 2; r++) { /* alternate: em, blis, em, blis */
        double e = per_call(mm_em, &p, rounds), b = per_call(mm_blis, &p, rounds);
        t_em = e < t_em ? e : t_em;
        t_blis = b < t_blis ? b : t_blis;
    }
    printf("  %-34s %9.1f %9.1f %8.3f\n", label, flops / t_em * 1e-9, flops / t_blis * 1e-9, t_blis / t_em);
    free(p.c);
    em_scope_end();
}

/* ---- bfloat16 and float16 matmul ---- */

/* [s,s] x [s,s] in float32, and in bfloat16 and float16 on each CPU route: the native one where the CPU has
 * it (VDPBF16PS) and float32 copies through BLIS. Rounds alternate between the rows. */
static void narrow_matmul_rows(int64_t s) {
    static const struct {
        em_dtype dtype;
        bool forced; /* through float32 copies */
    } rows[] = {{EM_F32, false}, {EM_BF16, false}, {EM_BF16, true}, {EM_F16, false}};
    enum { NROWS = sizeof rows / sizeof rows[0] };
    em_scope_begin();
    em_tensor *a = em_random_uniform(EM_F32, EM_SHAPE(s, s), -1, 1), *b = em_random_uniform(EM_F32, EM_SHAPE(s, s), -1, 1);
    mm_case p[NROWS];
    double best[NROWS];
    for (int i = 0; i < NROWS; i++) {
        p[i] = (mm_case){.a = em_cast(a, rows[i].dtype), .b = em_cast(b, rows[i].dtype), .m = s, .n = s, .k = s};
        best[i] = 1e30;
    }
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < NROWS; i++) {
            em__gemm_narrow_force_float32(rows[i].forced);
            double t = per_call(mm_em, &p[i], 3);
            best[i] = t < best[i] ? t : best[i];
        }
    double flops = 2.0 * (double)s * (double)s * (double)s;
    for (int i = 0; i < NROWS; i++) {
        em__gemm_narrow_force_float32(rows[i].forced);
        char label[64];
        snprintf(label, sizeof label, "%s (%s)", em_dtype_name(rows[i].dtype),
                 rows[i].dtype == EM_F32 ? "BLIS" : em__gemm_narrow_route(rows[i].dtype));
        printf("  %-34s %9.1f %9.3f\n", label, flops / best[i] * 1e-9, best[i] / best[0]);
    }
    em__gemm_narrow_force_float32(false);
    em_scope_end();
}

/* ---- elementwise ---- */

typedef struct {
    em_tensor *a, *b;
    float *x, *y, *out;
    int64_t n;
} add_case;

static void add_em(void *ctx) {
    add_case *p = ctx;
    em_scope_begin();
    em_add(p->a, p->b);
    em_scope_end();
}

static void add_loop(void *ctx) {
    add_case *p = ctx;
    /* the plain loop at its best: into one output buffer, reused */
    for (int64_t i = 0; i < p->n; i++) p->out[i] = p->x[i] + p->y[i];
}

/* ---- reductions ---- */

/* The plain loops: one float32 accumulator per output, vectorized by OpenMP's simd reduction (which reorders
 * the sum freely), over Ember's thread count; compiled for AVX-512 where the CPU has it, as Ember's kernels are. */
#define PLAIN_LOOP __attribute__((target_clones("arch=x86-64-v4", "default")))

typedef struct {
    em_tensor *a;
    const float *x;
    float *out;
    int64_t rows, cols;
    int axis; /* -1: all axes; 2: max over all axes */
} reduce_case;

static void reduce_em(void *ctx) {
    reduce_case *p = ctx;
    em_scope_begin();
    if (p->axis == 2) em_max(p->a, EM_ALL_AXES, false);
    else if (p->axis < 0) em_sum(p->a, EM_ALL_AXES, false);
    else em_sum(p->a, EM_AXES(p->axis), false);
    em_scope_end();
}

PLAIN_LOOP static void reduce_loop(void *ctx) {
    reduce_case *p = ctx;
    const float *x = p->x;
    int64_t n = p->rows * p->cols, cols = p->cols;
    int threads = em_num_threads();
    if (p->axis == 2) {
        float m = -INFINITY;
#pragma omp parallel for simd reduction(max : m) num_threads(threads)
        for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
        p->out[0] = m;
    } else if (p->axis < 0) {
        float s = 0;
#pragma omp parallel for simd reduction(+ : s) num_threads(threads)
        for (int64_t i = 0; i < n; i++) s += x[i];
        p->out[0] = s;
    } else if (p->axis == 1) {
#pragma omp parallel for num_threads(threads)
        for (int64_t r = 0; r < p->rows; r++) {
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t c = 0; c < cols; c++) s += x[r * cols + c];
            p->out[r] = s;
        }
    } else {
        /* column sums: each thread its own band of columns, the rows in order */
        enum { BAND = 256 };
#pragma omp parallel for num_threads(threads)
        for (int64_t c0 = 0; c0 < cols; c0 += BAND) {
            int64_t c1 = c0 + BAND < cols ? c0 + BAND : cols;
            for (int64_t c = c0; c < c1; c++) p->out[c] = 0;
            for (int64_t r = 0; r < p->rows; r++)
#pragma omp simd
                for (int64_t c = c0; c < c1; c++) p->out[c] += x[r * cols + c];
        }
    }
}

static void reduce_row(int64_t rows, int64_t cols, int axis) {
    em_scope_begin();
    reduce_case p = {.rows = rows, .cols = cols, .axis = axis};
    p.a = em_random_uniform(EM_F32, EM_SHAPE(rows, cols), -1, 1);
    p.x = em_data(p.a);
    p.out = malloc(sizeof(float) * (size_t)(rows > cols ? rows : cols));
    double bytes = 4.0 * (double)(rows * cols), e = 1e30, l = 1e30;
    int rounds = bytes > 1e9 ? 2 : 5;
    for (int r = 0; r < 2; r++) { /* alternate: em, loop, em, loop */
        double te = per_call(reduce_em, &p, rounds), tl = per_call(reduce_loop, &p, rounds);
        e = te < e ? te : e;
        l = tl < l ? tl : l;
    }
    char label[64];
    snprintf(label, sizeof label, "%s [%lld,%lld]%s", axis == 2 ? "max" : "sum", (long long)rows, (long long)cols,
             axis == 0 ? " axis 0" : axis == 1 ? " axis 1" : "");
    printf("  %-40s %11.1f %12.1f   (em / loop %.2f)\n", label, bytes / e * 1e-9, bytes / l * 1e-9, l / e);
    free(p.out);
    em_scope_end();
}

/* ---- transcendental elementwise ---- */

/* Transcendental elementwise ops on an array far larger than the last-level cache, against a plain copy loop
 * that reads and writes as many bytes: at 100%, the op streams at the memory's speed. */
typedef struct {
    em_tensor *a;
    const float *x;
    float *out;
    int64_t n;
    em_tensor *(*op)(em_tensor *);
} unary_case;

static void unary_em(void *ctx) {
    unary_case *p = ctx;
    em_scope_begin();
    p->op(p->a);
    em_scope_end();
}

PLAIN_LOOP static void copy_loop(void *ctx) {
    unary_case *p = ctx;
    const float *x = p->x;
    float *out = p->out;
#pragma omp parallel for simd num_threads(em_num_threads())
    for (int64_t i = 0; i < p->n; i++) out[i] = x[i];
}

static void unary_rows(int64_t n) {
    static const struct {
        const char *name;
        em_tensor *(*op)(em_tensor *);
    } ops[] = {{"exp", em_exp}, {"sigmoid", em_sigmoid}, {"tanh", em_tanh}};
    em_scope_begin();
    unary_case p = {.n = n};
    p.a = em_random_uniform(EM_F32, EM_SHAPE(n), -4, 4);
    p.x = em_data(p.a);
    p.out = malloc(sizeof(float) * (size_t)n);
    double bytes = 8.0 * (double)n;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        p.op = ops[i].op;
        double e = 1e30, l = 1e30;
        for (int r = 0; r < 2; r++) { /* alternate: em, loop, em, loop */
            double te = per_call(unary_em, &p, 3), tl = per_call(copy_loop, &p, 3);
            e = te < e ? te : e;
            l = tl < l ? tl : l;
        }
        printf("  %-40s %11.1f %12.1f   (em / loop %.2f)\n", ops[i].name, bytes / e * 1e-9, bytes / l * 1e-9, l / e);
    }
    free(p.out);
    em_scope_end();
}



/* ---- conv ---- */

typedef struct {
    em_tensor *x, *w, *r;
    bool grads;
} conv_case;

static void conv_fwd(void *ctx) {
    conv_case *p = ctx;
    em_scope_begin();
    em_conv2d(p->x, p->w, NULL, EM_PAD_SAME, NULL);
    em_scope_end();
}

/* The backward pass alone: gradients of conv2d for the given output gradient. */
static void conv_bwd(void *ctx) {
    conv_case *p = ctx;
    em_scope_begin();
    em_tape *tp = em_tape_begin(false);
    em_tensor *y = em_conv2d(p->x, p->w, NULL, EM_PAD_SAME, NULL), *g[2];
    em_tape_stop(tp);
    if (em_gradients_with(tp, y, p->r, p->grads ? 2 : 1, (em_tensor *[]){p->w, p->x}, g)) {
        fprintf(stderr, "conv backward failed: %s\n", em_last_error());
        exit(1);
    }
    em_tape_release(tp);
    em_scope_end();
}

static void conv_row(const char *label, em_shape xs, em_shape ws, bool input_grad) {
    em_scope_begin();
    conv_case p = {.grads = input_grad};
    p.x = em_random_uniform(EM_F32, xs, -1, 1);
    p.w = em_random_uniform(EM_F32, ws, -0.1, 0.1);
    p.r = em_random_uniform(EM_F32, em_tensor_shape(em_conv2d(p.x, p.w, NULL, EM_PAD_SAME, NULL)), -1, 1);
    double f = per_call(conv_fwd, &p, 5), full = per_call(conv_bwd, &p, 5);
    /* conv_bwd reruns the forward; report the backward alone */
    printf("  %-46s %9.2f %9.2f\n", label, f * 1e3, (full - f) * 1e3);
    em_scope_end();
}

static int nsections;
static char **sections;

static bool want(const char *section) {
    for (int i = 0; i < nsections; i++)
        if (strcmp(sections[i], section) == 0) return true;
    return nsections == 0;
}

int main(int argc, char **argv) {
    if (argc > 1) em_set_num_threads(atoi(argv[1]));
    nsections = argc > 2 ? argc - 2 : 0;
    sections = argv + 2;
    double start = now();
    em_set_seed(1);
    printf("threads: %d (EM_NUM_THREADS or argv[1]); BLIS threads: %d\n\n", em_num_threads(),
           (int)bli_thread_get_num_threads());

    if (want("matmul")) {
        printf("matmul float32                        em GFLOP/s  BLIS GFLOP/s  BLIS time / em time\n");
        for (int64_t s = 64; s <= 2048; s *= 2) {
            char label[64];
            snprintf(label, sizeof label, "[%lld,%lld] x [%lld,%lld]", (long long)s, (long long)s, (long long)s,
                     (long long)s);
            matmul_row(label, s, s, s, false, false);
        }
        printf("  MNIST MLP (batch 100, 784-500-10):\n");
        matmul_row("fwd  x W1 [100,784]x[784,500]", 100, 500, 784, false, false);
        matmul_row("fwd  h W2 [100,500]x[500,10]", 100, 10, 500, false, false);
        matmul_row("bwd  dW2 = h^T g [500,100]x[100,10]", 500, 10, 100, true, false);
        matmul_row("bwd  dh = g W2^T [100,10]x[10,500]", 100, 500, 10, false, true);
        matmul_row("bwd  dW1 = x^T g [784,100]x[100,500]", 784, 500, 100, true, false);

    }
    if (want("narrow")) {
        printf("\nmatmul [1024,1024] x [1024,1024] by dtype   GFLOP/s  time / float32's   (AMX-BF16: %s)\n",
               em__cpu_has_amx_bf16() ? "present, not used yet" : "absent");
        narrow_matmul_rows(1024);

    }
    if (want("add")) {
        printf("\nelementwise float32, 16M elements          em_add GB/s  C loop GB/s  (3 x 64 MB per call)\n");
        {
            em_scope_begin();
            add_case p = {.n = (int64_t)1 << 24};
            p.a = em_random_uniform(EM_F32, EM_SHAPE(p.n), -1, 1);
            p.b = em_random_uniform(EM_F32, EM_SHAPE(p.n), -1, 1);
            p.x = (float *)em_data(p.a);
            p.y = (float *)em_data(p.b);
            p.out = malloc(sizeof(float) * (size_t)p.n);
            double bytes = 3.0 * 4 * (double)p.n;
            double e = per_call(add_em, &p, 5), l = per_call(add_loop, &p, 5);
            printf("  %-40s %11.1f %12.1f   (em / loop %.2f)\n", "a + b", bytes / e * 1e-9, bytes / l * 1e-9, l / e);
            free(p.out);
            em_scope_end();
        }

    }
    if (want("reduce")) {
        printf("\nreductions float32                          em GB/s  C loop GB/s  (bytes read)\n");
        for (int64_t s = 1024; s <= 4096; s *= 4)
            for (int axis = -1; axis <= 2; axis++) reduce_row(s, s, axis);
        reduce_row(16384, 16384, -1); /* 1 GiB */
        reduce_row(16384, 16384, 2);
    }
    if (want("unary")) {
        printf("\nexp, sigmoid, tanh float32 on 1 GiB            em GB/s  copy loop GB/s  (bytes read + written)\n");
        unary_rows((int64_t)1 << 28);
    }
    if (want("conv")) {
        printf("\nconv2d float32, 5x5 SAME (the CNN example)            forward ms  backward ms\n");
        conv_row("conv1 [100,28,28,1] * [5,5,1,32] (dw only)", EM_SHAPE(100, 28, 28, 1), EM_SHAPE(5, 5, 1, 32), false);
        conv_row("conv2 [100,14,14,32] * [5,5,32,64] (dw, dx)", EM_SHAPE(100, 14, 14, 32), EM_SHAPE(5, 5, 32, 64), true);

    }
    printf("\ntotal %.1f s\n", now() - start);
    em_shutdown();
    return 0;
}
