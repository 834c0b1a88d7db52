/* Memory-bound passes over bfloat16 against the same passes over float32 (issue 20: elementwise ops, the
 * optimizer update and softmax at least 1.6x float32's speed on bfloat16 data, since they move half the
 * bytes). Arrays of 128 Mi elements: 512 MiB each in float32, far past the last-level cache.
 *
 *   build/bench/narrow [threads] [elements]      (default 1 thread, 134217728 elements)
 *
 * Bytes are what each pass must move at least, in the dtype's size: add reads two arrays and writes one;
 * mul by a scalar, gelu_tanh, relu and softmax (rows of 1024) read one and write one; sum reads one; an
 * Adam step reads the variable, its gradient and two slots and writes the variable and the slots (the
 * bfloat16 variable's slots are bfloat16 too). Each pass allocates its output as every op does (the
 * library's block cache gives back the previous call's block). Each pass runs in float32, then at once in
 * bfloat16, so both see the same load on a shared machine. The summary compares each pass's fastest call
 * (min), the one least disturbed, and prints bfloat16's speed (elements per second) over float32's. */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>

#define ROW 1024

typedef struct {
    em_tensor *x, *y, *s, *rows, *w, *g;
    em_optimizer *adam;
} bench;

static void fail(const char *what) {
    fprintf(stderr, "narrow: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

#define PASS(name, expr)                                                                                              \
    static void name(void *ctx) {                                                                                      \
        bench *b = ctx;                                                                                                \
        em_scope_begin();                                                                                              \
        if (!(expr)) fail(#name);                                                                                      \
        em_scope_end();                                                                                                \
    }
PASS(add, em_add(b->x, b->y))
PASS(mul_scalar, em_mul(b->x, b->s))
PASS(gelu_tanh, em_gelu_tanh(b->x))
PASS(relu, em_relu(b->x))
PASS(sum, em_sum(b->x, EM_ALL_AXES, false))
PASS(softmax, em_softmax(b->rows, -1))
static void adam(void *ctx) {
    bench *b = ctx;
    if (em_apply_gradients(b->adam, 1, &b->g, &b->w)) fail("adam");
}

typedef struct {
    const char *name;
    void (*fn)(void *);
    double arrays; /* arrays of n elements moved per call */
} pass;
static const pass passes[] = {
    {"add", add, 3},   {"mul by a scalar", mul_scalar, 2}, {"gelu_tanh", gelu_tanh, 2}, {"relu", relu, 2},
    {"sum", sum, 1},   {"softmax (rows of 1024)", softmax, 2}, {"adam step", adam, 7},
};
enum { NPASS = sizeof passes / sizeof passes[0] };

/* The inputs, a variable and its optimizer for n elements of dtype d. */
static void make(bench *b, em_dtype d, int64_t n) {
    b->x = em_cast(em_random_uniform(EM_F32, EM_SHAPE(n), -3, 3), d);
    b->y = em_cast(em_random_uniform(EM_F32, EM_SHAPE(n), -3, 3), d);
    b->g = em_cast(em_random_uniform(EM_F32, EM_SHAPE(n), -1, 1), d);
    b->s = em_scalar(d, 0.7);
    if (!b->x || !b->y || !b->g || !b->s) fail("inputs");
    b->rows = em_reshape(b->x, EM_SHAPE(n / ROW, ROW));
    char name[32];
    snprintf(name, sizeof name, "bench_narrow/w_%s", em_dtype_name(d));
    b->w = em_get_variable(name, d, EM_SHAPE(n), EM_INIT_FROM(b->y));
    b->adam = em_adam(1e-3, 0.9, 0.999, 1e-8);
    if (!b->rows || !b->w || !b->adam || em_apply_gradients(b->adam, 1, &b->g, &b->w)) fail("adam setup");
}

/* GB/s of pass k's fastest call on b's n elements of dtype d. */
static double run(const bench *b, int k, em_dtype d, int64_t n) {
    em_bench_config cfg = em_bench_defaults();
    cfg.bytes = passes[k].arrays * (double)n * (double)em_dtype_size(d);
    cfg.min_reps = 5;
    cfg.max_time_s = 3;
    em_bench_result r;
    char label[64];
    snprintf(label, sizeof label, "%s %s", passes[k].name, em_dtype_name(d));
    if (em_bench_run(label, passes[k].fn, (void *)b, &cfg, &r)) fail(label);
    char line[256];
    em_bench_format(&r, line, sizeof line);
    printf("  %s\n", line);
    return r.bytes / r.min_s / 1e9;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 1;
    const int64_t n = argc > 2 ? atoll(argv[2]) : (int64_t)128 << 20;
    if (threads < 1 || n < ROW || n % ROW) fail("usage: narrow [threads >= 1] [elements, a multiple of 1024]");
    em_set_num_threads(threads);
    printf("memory-bound passes over %lld elements (%.0f MiB in float32), threads: %d\n", (long long)n,
           (double)n * 4 / (1 << 20), threads);
    double f32[NPASS], bf16[NPASS];
    bench wide, narrow;
    make(&wide, EM_F32, n);
    make(&narrow, EM_BF16, n);
    for (int k = 0; k < NPASS; k++) { /* each pass in both dtypes back to back: the same load on a shared machine */
        f32[k] = run(&wide, k, EM_F32, n);
        bf16[k] = run(&narrow, k, EM_BF16, n);
    }
    printf("fastest calls, elements per second of bfloat16 over float32 (bytes are half):\n");
    for (int k = 0; k < NPASS; k++)
        printf("  %-24s float32 %6.1f GB/s  bfloat16 %6.1f GB/s  speed %.2fx\n", passes[k].name, f32[k], bf16[k],
               2 * bf16[k] / f32[k]);
    em_shutdown();
    return 0;
}
