/* em_moments (one op, one read of x) beside the two passes it replaced (em_mean, then the mean of the
 * squared deviations from it), em_sum over the same axes, and a plain C loop summing the same floats (the
 * memory baseline: one read stream), same run, same threads. float32, 16M elements (64 MiB):
 *   batch norm's statistics: [64, 64, 64, 64] NHWC over axes (0, 1, 2) (64 neighbouring columns);
 *   layer norm's: [16384, 1024] and [262144, 64] over the last axis (rows);
 *   everything: [16777216] over its one axis (one output, cut into chunks).
 *
 *   build/bench/moments [threads]     (default: EM_NUM_THREADS, else all cores)
 *
 * Each figure is the best of 7 samples of >= 50 ms; GB/s counts the bytes of x read once. */
#include <ember.h>

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define N (64 * 64 * 64 * 64)

static void fail(const char *what) {
    fprintf(stderr, "moments: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

typedef struct {
    em_tensor *x;
    int naxes;
    const int *axes;
    const float *data;
    int threads;
    volatile float sink;
} job;

static void one_pass(job *j) {
    em_tensor *m, *v;
    if (em_moments(j->x, j->naxes, j->axes, false, &m, &v)) fail("em_moments");
}
static void two_pass(job *j) {
    em_tensor *m = em_mean(j->x, j->naxes, j->axes, true);
    if (!em_mean(em_square(em_sub(j->x, m)), j->naxes, j->axes, false)) fail("two passes");
}
static void sum(job *j) {
    if (!em_sum(j->x, j->naxes, j->axes, false)) fail("em_sum");
}
/* Sixteen float lanes per thread over its share: one read of every float, as fast as the core streams. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void c_sum(job *j) {
    float total = 0;
#pragma omp parallel num_threads(j->threads) reduction(+ : total)
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads(), lo = N * t / nt, hi = N * (t + 1) / nt;
        float lane[16] = {0};
        for (int64_t i = lo; i + 16 <= hi; i += 16)
#pragma omp simd
            for (int l = 0; l < 16; l++) lane[l] += j->data[i + l];
        for (int l = 0; l < 16; l++) total += lane[l];
    }
    j->sink = total;
}

typedef struct {
    void (*f)(job *);
    job *j;
} call;
static void run_call(void *ctx) {
    const call *c = ctx;
    em_scope_begin();
    c->f(c->j);
    em_scope_end();
}

/* Seconds per call: the fastest sample of em_bench_run (ember/bench.h). */
static double per_call(void (*f)(job *), job *j) {
    em_bench_config cfg = em_bench_defaults();
    cfg.min_reps = 7;
    em_bench_result r;
    if (em_bench_run("moments", run_call, &(call){f, j}, &cfg, &r)) fail("em_bench_run");
    return r.min_s;
}

int main(int argc, char **argv) {
    if (argc > 1) em_set_num_threads(atoi(argv[1]));
    em_set_seed(1);
    em_tensor *flat = em_add_scalar(em_random_normal(EM_F32, EM_SHAPE(N), 0, 1), 10);
    if (!flat) fail("input");
    const double bytes = (double)N * sizeof(float);
    struct {
        const char *name;
        em_shape shape;
        int naxes;
        int axes[3];
    } rows[] = {{"[64,64,64,64] axes (0,1,2)", EM_SHAPE(64, 64, 64, 64), 3, {0, 1, 2}},
                {"[16384,1024] axis -1", EM_SHAPE(16384, 1024), 1, {-1}},
                {"[262144,64] axis -1", EM_SHAPE(262144, 64), 1, {-1}},
                {"[16777216] all", EM_SHAPE(N), 0, {0}}};
    job j = {.data = em_data(flat), .threads = em_num_threads()};
    printf("moments, float32, 64 MiB, %d threads (best of 7; GB/s: x read once)\n", em_num_threads());
    double tc = per_call(c_sum, &j);
    printf("  C sum loop (baseline)                     %7.2f ms %6.1f GB/s\n", tc * 1e3, bytes / tc * 1e-9);
    for (int r = 0; r < 4; r++) {
        j.x = em_reshape(flat, rows[r].shape);
        j.naxes = rows[r].naxes;
        j.axes = rows[r].axes;
        double t1 = per_call(one_pass, &j), t2 = per_call(two_pass, &j), ts = per_call(sum, &j);
        printf("  %-28s em_moments   %7.2f ms %6.1f GB/s (%3.0f%% of the C loop's)\n", rows[r].name, t1 * 1e3,
               bytes / t1 * 1e-9, 100 * tc / t1);
        printf("  %-28s two passes   %7.2f ms %6.1f GB/s\n", "", t2 * 1e3, bytes / t2 * 1e-9);
        printf("  %-28s em_sum       %7.2f ms %6.1f GB/s\n", "", ts * 1e3, bytes / ts * 1e-9);
    }
    em_shutdown();
    return 0;
}
