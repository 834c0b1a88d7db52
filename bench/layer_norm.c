/* Layer norm at [131072, 768] float32 (384 MiB, larger than the last-level
 * cache), forward and backward, against a plain C copy loop over the same
 * bytes in the same run, with the same threads (issue 17: at least 80% of
 * the copy loop's bandwidth; `make bench` runs it on 1 thread and on nproc).
 *
 *   build/bench/layer_norm [threads]      (default 1)
 *
 * Bytes are what each pass must move at least: the copy loop reads and
 * writes n floats; forward reads x and writes y (and a mean and rstd per
 * row); backward reads x and dy and writes dx (and reads the row statistics,
 * writes dgamma and dbeta). Backward is y's gradient through a persistent
 * tape (em_gradients_with with dy), as training runs it. Both Ember passes
 * allocate their output each call, as every op does (the library's block
 * cache gives back the previous call's block), and write outputs this large
 * with streaming stores, which skip reading each line before writing it. So
 * the copy loop runs with ordinary stores and with streaming stores, into one
 * buffer allocated once, and the passes are compared with the faster of the
 * two; it runs once more into a buffer malloc'd and freed each call (fresh
 * pages, which a loop's outputs would get without the block cache). The
 * summary compares each one's fastest call (min), the one least disturbed on
 * a shared machine. */
#include <ember.h>

#include <emmintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLS 768

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

/* The reference: one pass reading src and writing dst, split across the
 * threads, in the widest vectors the CPU has with ordinary stores, as
 * Ember's kernels (a scalar loop would measure the core, not memory; GCC
 * would make the loop a memcpy call, whose streaming stores no kernel uses). */
__attribute__((target_clones("avx512f", "avx2", "default"), optimize("no-tree-loop-distribute-patterns"))) static void
copy_range(const float *restrict src, float *restrict dst, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}
static void copy_loop(void *ctx) {
    bench *b = ctx;
#pragma omp parallel num_threads(b->threads)
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t begin = b->n * t / nt, end = b->n * (t + 1) / nt;
        copy_range(b->src + begin, b->dst + begin, end - begin);
    }
}

/* The same with streaming stores (SSE2's, as the library's), 16 bytes at a
 * time: each thread's range starts at a multiple of 4 floats. */
static void stream_copy_loop(void *ctx) {
    bench *b = ctx;
#pragma omp parallel num_threads(b->threads)
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t begin = b->n / 4 * t / nt * 4, end = t + 1 == nt ? b->n : b->n / 4 * (t + 1) / nt * 4, i = begin;
        for (; i + 4 <= end; i += 4) _mm_stream_ps(b->dst + i, _mm_loadu_ps(b->src + i));
        for (; i < end; i++) b->dst[i] = b->src[i];
        _mm_sfence();
    }
}

static void fresh_copy_loop(void *ctx) {
    bench *b = ctx;
    float *keep = b->dst;
    if (!(b->dst = malloc(sizeof(float) * (size_t)b->n))) fail("copy buffer");
    copy_loop(b);
    free(b->dst);
    b->dst = keep;
}

static void forward(void *ctx) {
    bench *b = ctx;
    em_scope_begin();
    if (!em_layer_norm(b->x, b->gamma, b->beta, -1, 1e-5)) fail("forward");
    em_scope_end();
}

static void backward(void *ctx) {
    bench *b = ctx;
    em_tensor *g[3];
    em_scope_begin();
    if (em_gradients_with(b->tape, b->y, b->dy, 3, (em_tensor *[]){b->x, b->gamma, b->beta}, g)) fail("backward");
    em_scope_end();
}

static double run(const char *name, void (*fn)(void *), bench *b, double bytes) {
    em_bench_config cfg = em_bench_defaults();
    cfg.bytes = bytes;
    cfg.min_reps = 5;
    cfg.max_time_s = 3;
    em_bench_result r;
    if (em_bench_run(name, fn, b, &cfg, &r)) fail(name);
    char line[256];
    em_bench_format(&r, line, sizeof line);
    printf("  %s\n", line);
    return r.bytes / r.min_s / 1e9;
}

int main(int argc, char **argv) {
    const int64_t rows = 131072, n = rows * COLS;
    const int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1) fail("threads must be at least 1");
    em_set_num_threads(threads);
    bench b = {.n = n, .threads = threads};
    b.x = em_random_normal(EM_F32, EM_SHAPE(rows, COLS), 1, 2);
    b.dy = em_random_normal(EM_F32, EM_SHAPE(rows, COLS), 0, 1);
    b.gamma = em_random_uniform(EM_F32, EM_SHAPE(COLS), 0.5, 1.5);
    b.beta = em_random_uniform(EM_F32, EM_SHAPE(COLS), -1, 1);
    if (!b.x || !b.dy || !b.gamma || !b.beta) fail("inputs");
    b.src = em_data(b.dy);
    b.dst = malloc(sizeof(float) * (size_t)n);
    if (!b.dst) fail("copy buffer");
    memset(b.dst, 0, sizeof(float) * (size_t)n); /* its pages exist before the copy loop is timed */
    const double mib = (double)n * sizeof(float) / (1 << 20);
    const double row_stats = 2.0 * (double)rows * sizeof(float), params = 2.0 * COLS * sizeof(float);
    printf("layer norm [%lld, %d] float32 (%.0f MiB per tensor), threads: %d\n", (long long)rows, COLS, mib, threads);
    double plain = run("copy loop (read + write)", copy_loop, &b, 2.0 * n * sizeof(float));
    double streamed = run("copy loop with streaming stores", stream_copy_loop, &b, 2.0 * n * sizeof(float));
    double copy = plain > streamed ? plain : streamed;
    double fresh = run("copy loop into a fresh buffer", fresh_copy_loop, &b, 2.0 * n * sizeof(float));
    double fwd = run("layer_norm forward", forward, &b, 2.0 * n * sizeof(float) + row_stats + 2 * params);
    b.tape = em_tape_begin(true);
    b.y = em_layer_norm(b.x, b.gamma, b.beta, -1, 1e-5);
    if (!b.y) fail("forward");
    em_tape_stop(b.tape); /* it holds y's op; backward runs from it again and again */
    double bwd = run("layer_norm backward", backward, &b, 3.0 * n * sizeof(float) + row_stats + 3 * params);
    em_tape_release(b.tape);
    printf("fastest calls: forward %.1f GB/s = %.0f%% of the faster copy loop's %.1f GB/s "
           "(ordinary stores %.1f, streaming %.1f; %.1f GB/s into fresh pages); "
           "backward %.1f GB/s = %.0f%%\n",
           fwd, 100 * fwd / copy, copy, plain, streamed, fresh, bwd, 100 * bwd / copy);
    free(b.dst);
    em_shutdown();
    return 0;
}
