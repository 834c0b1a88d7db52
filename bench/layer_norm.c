/* Layer norm at [131072, 768] float32 (384 MiB per tensor, larger than the
 * last-level cache), forward and backward, against a C copy loop in the same
 * run, with the same threads (issue 17: at least 80% of the copy loop's
 * bandwidth; `make bench` runs it on 1 thread and on nproc).
 *
 *   build/bench/layer_norm [threads [rounds]]      (default 1 thread, 15 rounds)
 *
 * Bytes are counted the same way for every pass: what it must read and
 * write, each byte once.
 *   copy loop: reads n floats, writes n floats;
 *   forward:   reads x, writes y (and a mean and rstd per row; reads gamma, beta);
 *   backward:  reads x and dy, writes dx (and reads the row statistics and
 *              gamma; writes dgamma, dbeta).
 * Not counted: the read of each line that an ordinary store makes before
 * writing it (write-allocate). Streaming stores skip it, and both passes write
 * outputs this large with them; so the copy loop runs twice, with ordinary
 * and with streaming stores, and the passes are compared with the faster of
 * the two.
 *
 * Each round times one call of each in turn (copy loop with ordinary stores,
 * with streaming stores, forward, backward), so that all four see the same
 * machine on a shared one; the summary gives each one's median and fastest
 * call over the rounds, and the load average before and after. Backward is
 * y's gradient through a persistent tape (em_gradients_with with dy), as
 * training runs it; both passes allocate their outputs each call, as every op
 * does (the library's block cache gives back the previous call's block).
 * Last, for scale, the copy into a buffer malloc'd and freed each call: fresh
 * pages, which a loop's outputs would get without the block cache. */
#include <ember.h>

#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROWS 131072
#define COLS 768
#define ROUNDS_MAX 1000

typedef struct {
    int64_t n;
    const float *src;
    float *dst;
    int threads;
    em_tensor *x, *gamma, *beta, *dy, *y;
    em_tape *tape;
} bench;

static void fail(const char *what) {
    /* em_last_error() holds the library's message; a bad argument has none */
    fprintf(stderr, "layer_norm: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The reference: one pass reading src and writing dst, split across the
 * threads, in the widest vectors the CPU has with ordinary stores, as
 * Ember's kernels (a scalar loop would measure the core, not memory; GCC
 * would make the loop a memcpy call, whose streaming stores no kernel uses). */
__attribute__((target_clones("avx512f", "avx2", "default"), optimize("no-tree-loop-distribute-patterns"))) static void
copy_range(const float *restrict src, float *restrict dst, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}
static void copy_loop(bench *b) {
#pragma omp parallel num_threads(b->threads)
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t begin = b->n * t / nt, end = b->n * (t + 1) / nt;
        copy_range(b->src + begin, b->dst + begin, end - begin);
    }
}

/* The same with streaming stores, a whole 64-byte line at a time where the
 * CPU has AVX-512 (as the library's), else 16 bytes (SSE2); each thread's
 * range starts at a multiple of 16 floats. */
__attribute__((target("avx512f"))) static void stream_range_avx512(const float *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
    for (; i < n; i++) dst[i] = src[i];
}
static void stream_range_sse2(const float *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < n; i++) dst[i] = src[i];
}
static void stream_copy_loop(bench *b) {
    const bool avx512 = __builtin_cpu_supports("avx512f");
#pragma omp parallel num_threads(b->threads)
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t begin = b->n / 16 * t / nt * 16, end = t + 1 == nt ? b->n : b->n / 16 * (t + 1) / nt * 16;
        (avx512 ? stream_range_avx512 : stream_range_sse2)(b->src + begin, b->dst + begin, end - begin);
        _mm_sfence();
    }
}

static void fresh_copy_loop(bench *b) {
    float *keep = b->dst;
    if (!(b->dst = malloc(sizeof(float) * (size_t)b->n))) fail("copy buffer");
    copy_loop(b);
    free(b->dst);
    b->dst = keep;
}

static void forward(bench *b) {
    em_scope_begin();
    if (!em_layer_norm(b->x, b->gamma, b->beta, -1, 1e-5)) fail("forward");
    em_scope_end();
}

static void backward(bench *b) {
    em_tensor *g[3];
    em_scope_begin();
    if (em_gradients_with(b->tape, b->y, b->dy, 3, (em_tensor *[]){b->x, b->gamma, b->beta}, g)) fail("backward");
    em_scope_end();
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *name;
    void (*fn)(bench *);
    double bytes;
    double s[ROUNDS_MAX]; /* seconds of each round's call */
    double median, best;  /* GB/s */
} pass;

static void load_average(const char *when) {
    double l[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) == 3)
        printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    const int64_t n = (int64_t)ROWS * COLS;
    const int threads = argc > 1 ? atoi(argv[1]) : 1, rounds = argc > 2 ? atoi(argv[2]) : 15;
    if (threads < 1) fail("threads must be at least 1");
    if (rounds < 1 || rounds > ROUNDS_MAX) fail("rounds must be 1 to 1000");
    em_set_num_threads(threads);
    bench b = {.n = n, .threads = threads};
    b.x = em_random_normal(EM_F32, EM_SHAPE(ROWS, COLS), 1, 2);
    b.dy = em_random_normal(EM_F32, EM_SHAPE(ROWS, COLS), 0, 1);
    b.gamma = em_random_uniform(EM_F32, EM_SHAPE(COLS), 0.5, 1.5);
    b.beta = em_random_uniform(EM_F32, EM_SHAPE(COLS), -1, 1);
    if (!b.x || !b.dy || !b.gamma || !b.beta) fail("inputs");
    b.src = em_data(b.dy);
    b.dst = aligned_alloc(64, sizeof(float) * (size_t)n); /* streaming stores of 64 bytes need their alignment */
    if (!b.dst) fail("copy buffer");
    memset(b.dst, 0, sizeof(float) * (size_t)n); /* its pages exist before the copy loop is timed */
    b.tape = em_tape_begin(true);
    b.y = em_layer_norm(b.x, b.gamma, b.beta, -1, 1e-5);
    if (!b.y) fail("forward");
    em_tape_stop(b.tape); /* it holds y's op; backward runs from it again and again */

    const double tensor = (double)n * sizeof(float), row_stats = 2.0 * ROWS * sizeof(float);
    const double params = COLS * sizeof(float);
    pass p[] = {
        {.name = "copy loop, ordinary stores", .fn = copy_loop, .bytes = 2 * tensor},
        {.name = "copy loop, streaming stores", .fn = stream_copy_loop, .bytes = 2 * tensor},
        {.name = "layer_norm forward", .fn = forward, .bytes = 2 * tensor + row_stats + 2 * params},
        {.name = "layer_norm backward", .fn = backward, .bytes = 3 * tensor + row_stats + 3 * params},
    };
    const int np = sizeof p / sizeof p[0];
    printf("layer norm [%d, %d] float32 (%.0f MiB per tensor), threads: %d, rounds: %d\n", ROWS, COLS,
           tensor / (1 << 20), threads, rounds);
    load_average("before");
    /* Warm-up: each pass once, then a forward output and a backward one held
     * at once, as in training (y lives until the backward pass is done): the
     * process's high-water mark then has room for the block cache to keep
     * both blocks, which the rounds' calls, one after the other, take in turn. */
    for (int k = 0; k < np; k++) p[k].fn(&b);
    em_scope_begin();
    em_tensor *g[3];
    if (!em_layer_norm(b.x, b.gamma, b.beta, -1, 1e-5) ||
        em_gradients_with(b.tape, b.y, b.dy, 3, (em_tensor *[]){b.x, b.gamma, b.beta}, g))
        fail("warm-up");
    em_scope_end();
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < np; k++) {
            double t = now();
            p[k].fn(&b);
            p[k].s[r] = now() - t;
        }
    load_average("after");
    for (int k = 0; k < np; k++) {
        qsort(p[k].s, (size_t)rounds, sizeof(double), by_value);
        double median = rounds % 2 ? p[k].s[rounds / 2] : (p[k].s[rounds / 2 - 1] + p[k].s[rounds / 2]) / 2;
        p[k].median = p[k].bytes / median / 1e9;
        p[k].best = p[k].bytes / p[k].s[0] / 1e9;
        printf("  %-28s %7.0f MB: median %6.2f ms %5.1f GB/s, fastest %6.2f ms %5.1f GB/s\n", p[k].name,
               p[k].bytes / 1e6, 1e3 * median, p[k].median, 1e3 * p[k].s[0], p[k].best);
    }
    const pass *copy_median = p[0].median > p[1].median ? &p[0] : &p[1];
    const pass *copy_best = p[0].best > p[1].best ? &p[0] : &p[1];
    for (int k = 2; k < np; k++)
        printf("%s: %.0f%% of the faster copy loop by medians (%s), %.0f%% by fastest calls (%s)\n", p[k].name,
               100 * p[k].median / copy_median->median, copy_median->name, 100 * p[k].best / copy_best->best,
               copy_best->name);
    double fresh = 1e30;
    for (int r = 0; r < 3; r++) {
        double t = now();
        fresh_copy_loop(&b);
        t = now() - t;
        fresh = t < fresh ? t : fresh;
    }
    printf("copy loop into fresh pages (malloc'd and freed each call), fastest of 3: %.1f GB/s\n",
           2 * tensor / fresh / 1e9);
    em_tape_release(b.tape);
    free(b.dst);
    em_shutdown();
    return 0;
}
