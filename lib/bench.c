/* Kernel microbenchmarking: the sampling harness and the CPU peak estimate. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EM_BENCH_X86 1
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

em_bench_config em_bench_defaults(void) {
    return (em_bench_config){
        .min_time_s = 0.1,
        .max_time_s = 1.0,
        .min_reps = 5,
        .max_reps = 10000,
        .target_rel_spread = 0.02,
        .warmup_s = 0.05,
        .min_sample_s = 50e-6,
    };
}

/* A non-negative finite double, else an error naming the field. */
static int check_nonneg(const char *field, double v) {
    if (isfinite(v) && v >= 0) return 0;
    em__error("bench: config %s must be a finite number >= 0, got %g", field, v);
    return -1;
}

static int check_config(const em_bench_config *c) {
    if (check_nonneg("min_time_s", c->min_time_s) || check_nonneg("max_time_s", c->max_time_s) ||
        check_nonneg("target_rel_spread", c->target_rel_spread) || check_nonneg("warmup_s", c->warmup_s) ||
        check_nonneg("min_sample_s", c->min_sample_s) || check_nonneg("flops", c->flops) ||
        check_nonneg("bytes", c->bytes) || check_nonneg("peak_gflops", c->peak_gflops))
        return -1;
    if (c->min_sample_s <= 0) {
        em__error("bench: config min_sample_s must be > 0 (it sets how many calls a sample batches)");
        return -1;
    }
    if (c->max_reps < 1 || c->min_reps < 0 || c->min_reps > c->max_reps) {
        em__error("bench: config needs 0 <= min_reps <= max_reps and max_reps >= 1, got min_reps %d, max_reps %d",
                  c->min_reps, c->max_reps);
        return -1;
    }
    if (c->min_time_s > c->max_time_s) {
        em__error("bench: config min_time_s (%g) is larger than max_time_s (%g)", c->min_time_s, c->max_time_s);
        return -1;
    }
    return 0;
}

/* Linear interpolation between order statistics of sorted s[0..n-1]. */
static double quantile(const double *s, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return s[n - 1];
    return s[i] + (pos - i) * (s[i + 1] - s[i]);
}

static double rel_spread(const double *s, int n) {
    double med = quantile(s, n, 0.5);
    return med > 0 ? (quantile(s, n, 0.75) - quantile(s, n, 0.25)) / med : 0.0;
}

/* Runs fn in doubling batches until warmup_s has passed and a batch lasts
 * min_sample_s; returns the calls one sample needs, from the fastest batch
 * per call (a batch slowed by an interrupt must not shrink the samples). */
static int64_t calibrate(void (*fn)(void *), void *ctx, const em_bench_config *c, em_bench_result *r) {
    double start = now_s(), per_call = INFINITY;
    int64_t batch = 1;
    for (;;) {
        double t = now_s();
        for (int64_t i = 0; i < batch; i++) fn(ctx);
        double batch_s = now_s() - t;
        r->warmup_calls += batch;
        per_call = fmin(per_call, batch_s / (double)batch);
        if (batch_s >= c->min_sample_s && now_s() - start >= c->warmup_s) break;
        if (batch_s < c->min_sample_s && batch < ((int64_t)1 << 40)) batch *= 2;
    }
    r->warmup_time_s = now_s() - start;
    int64_t calls = per_call > 0 ? (int64_t)ceil(c->min_sample_s / per_call) : batch;
    return calls < 1 ? 1 : calls;
}

int em_bench_run(const char *name, void (*fn)(void *ctx), void *ctx, const em_bench_config *cfg,
                 em_bench_result *out) {
    if (!fn || !out) {
        em__error("bench: %s is NULL", fn ? "the result pointer" : "the function to time");
        return -1;
    }
    em_bench_config c = cfg ? *cfg : em_bench_defaults();
    if (check_config(&c)) return -1;

    em_bench_result r = {.threads = em_num_threads(), .flops = c.flops, .bytes = c.bytes,
                         .peak_gflops = c.peak_gflops};
    snprintf(r.name, sizeof r.name, "%s", name ? name : "");
    snprintf(r.device, sizeof r.device, "/cpu:0");
    r.calls_per_sample = calibrate(fn, ctx, &c, &r);

    /* Samples kept sorted by insertion: the stop rule reads quantiles after each. */
    int cap = c.max_reps < 1024 ? c.max_reps : 1024, n = 0;
    double *s = malloc(sizeof(double) * (size_t)cap), sum = 0;
    if (!s) {
        em__error("bench: out of memory for %d samples", cap);
        return -1;
    }
    double start = now_s(), elapsed = 0;
    for (;;) {
        double t = now_s();
        for (int64_t i = 0; i < r.calls_per_sample; i++) fn(ctx);
        double end = now_s(), v = (end - t) / (double)r.calls_per_sample;
        elapsed = end - start;
        if (n == cap) {
            int grown = cap > c.max_reps / 2 ? c.max_reps : cap * 2;
            double *g = realloc(s, sizeof(double) * (size_t)grown);
            if (!g) {
                free(s);
                em__error("bench: out of memory for %d samples", grown);
                return -1;
            }
            s = g;
            cap = grown;
        }
        int k = n++;
        while (k > 0 && s[k - 1] > v) {
            s[k] = s[k - 1];
            k--;
        }
        s[k] = v;
        sum += v;
        if (n >= c.max_reps || elapsed >= c.max_time_s) break;
        if (n >= c.min_reps && elapsed >= c.min_time_s && rel_spread(s, n) <= c.target_rel_spread) break;
    }
    r.samples = n;
    r.calls = (int64_t)n * r.calls_per_sample;
    r.sample_time_s = elapsed;
    r.min_s = s[0];
    r.max_s = s[n - 1];
    r.p25_s = quantile(s, n, 0.25);
    r.median_s = quantile(s, n, 0.5);
    r.p75_s = quantile(s, n, 0.75);
    r.mean_s = sum / n;
    r.rel_spread = rel_spread(s, n);
    r.converged = r.rel_spread <= c.target_rel_spread;
    free(s);
    if (r.median_s > 0) {
        r.gflops = c.flops / r.median_s / 1e9;
        r.gbps = c.bytes / r.median_s / 1e9;
    }
    if (c.peak_gflops > 0) r.pct_peak = 100.0 * r.gflops / c.peak_gflops;
    *out = r;
    return 0;
}

/* ---- peak estimate ----
 * Each kernel runs 12 independent multiply-add chains (enough to cover the
 * latency of two FMA pipes) and returns the FLOPs it did; the sum goes to a
 * volatile sink so the loop is not optimised away. */
#define EM_R12(X, F) X(0, F) X(1, F) X(2, F) X(3, F) X(4, F) X(5, F) X(6, F) X(7, F) X(8, F) X(9, F) X(10, F) X(11, F)
#define EM_FMA_DECL(i, SET1) vec_t a##i = SET1(1.0 + (i) * 1e-3);
#define EM_FMA_STEP(i, FMA) a##i = FMA(a##i, m, c);
#define EM_FMA_SUM(i, ADD) acc = ADD(acc, a##i);

static volatile double peak_sink;

/* The body of every kernel: 2 * lanes FLOPs per chain step. */
#define FMA_BODY(VT, SET1, FMA, ADD, REDUCE, LANES)                \
    {                                                              \
        typedef VT vec_t;                                          \
        vec_t m = SET1(0.9999999), c = SET1(1e-7), acc = SET1(0.0); \
        EM_R12(EM_FMA_DECL, SET1)                                  \
        for (int64_t it = 0; it < iters; it++) {                   \
            EM_R12(EM_FMA_STEP, FMA)                               \
        }                                                          \
        EM_R12(EM_FMA_SUM, ADD)                                    \
        peak_sink = REDUCE(acc);                                   \
        return 2.0 * (LANES) * 12.0 * (double)iters;               \
    }

#define SCALAR_FMA(a, m, c) ((a) * (m) + (c))
#define SCALAR_ADD(a, b) ((a) + (b))
#define SCALAR_SET1(x) (x)
#define SCALAR_REDUCE(x) ((double)(x))
/* The portable fallback: a multiply and an add per step, as the compiler sees fit. */
static double fma_scalar_f32(int64_t iters) FMA_BODY(float, SCALAR_SET1, SCALAR_FMA, SCALAR_ADD, SCALAR_REDUCE, 1)
static double fma_scalar_f64(int64_t iters) FMA_BODY(double, SCALAR_SET1, SCALAR_FMA, SCALAR_ADD, SCALAR_REDUCE, 1)

#ifdef EM_BENCH_X86
#define R256S(x) ((double)_mm256_cvtss_f32(x))
#define R256D(x) _mm256_cvtsd_f64(x)
#define R512S(x) ((double)_mm512_reduce_add_ps(x))
#define R512D(x) _mm512_reduce_add_pd(x)
__attribute__((target("avx2,fma"))) static double fma_avx2_f32(int64_t iters)
    FMA_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, R256S, 8)
__attribute__((target("avx2,fma"))) static double fma_avx2_f64(int64_t iters)
    FMA_BODY(__m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_add_pd, R256D, 4)
__attribute__((target("avx512f"))) static double fma_avx512_f32(int64_t iters)
    FMA_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, R512S, 16)
__attribute__((target("avx512f"))) static double fma_avx512_f64(int64_t iters)
    FMA_BODY(__m512d, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd, R512D, 8)
#endif

typedef double (*fma_kernel)(int64_t iters);

static fma_kernel pick_kernel(bool f64) {
#ifdef EM_BENCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return f64 ? fma_avx512_f64 : fma_avx512_f32;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return f64 ? fma_avx2_f64 : fma_avx2_f32;
#endif
    return f64 ? fma_scalar_f64 : fma_scalar_f32;
}

/* FLOP/s of `threads` threads each running kernel(iters), started together. */
static double parallel_rate(fma_kernel kernel, int64_t iters, int threads) {
    double flops = 0, t0 = 0, t1 = 0;
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    {
#pragma omp barrier
#pragma omp master
        t0 = now_s();
        flops += kernel(iters);
#pragma omp barrier
#pragma omp master
        t1 = now_s();
    }
    return t1 > t0 ? flops / (t1 - t0) : 0.0;
}

double em_bench_cpu_peak_gflops(em_dtype dtype, int threads) {
    if (!em__is_float(dtype)) {
        em__error("bench: peak estimate needs float32 or float64, got %s", em_dtype_name(dtype));
        return -1;
    }
    if (threads < 1) threads = em_num_threads();
    fma_kernel kernel = pick_kernel(dtype == EM_F64);
    /* Grow the loop until one run lasts ~20 ms, then keep the best of 3. */
    int64_t iters = 1 << 12;
    double t = now_s();
    kernel(iters);
    while (now_s() - t < 5e-3 && iters < ((int64_t)1 << 40)) {
        iters *= 2;
        t = now_s();
        kernel(iters);
    }
    iters *= 4;
    double best = 0;
    for (int round = 0; round < 3; round++) {
        double rate = parallel_rate(kernel, iters, threads);
        if (rate > best) best = rate;
    }
    return best / 1e9;
}

/* "1.234 ms" with a unit that keeps 1-3 digits before the point. */
static const char *fmt_time(double s, char *buf, size_t size) {
    if (s >= 1) snprintf(buf, size, "%.3f s", s);
    else if (s >= 1e-3) snprintf(buf, size, "%.3f ms", s * 1e3);
    else if (s >= 1e-6) snprintf(buf, size, "%.3f us", s * 1e6);
    else snprintf(buf, size, "%.1f ns", s * 1e9);
    return buf;
}

int em_bench_format(const em_bench_result *r, char *buf, size_t size) {
    if (!r) return snprintf(buf, size, "(no result)");
    char med[32], lo[32], hi[32];
    int len = snprintf(buf, size, "%s: median %s (min %s, max %s, %d samples x %lld calls, spread %.1f%%)", r->name,
                       fmt_time(r->median_s, med, sizeof med), fmt_time(r->min_s, lo, sizeof lo),
                       fmt_time(r->max_s, hi, sizeof hi), r->samples, (long long)r->calls_per_sample,
                       100.0 * r->rel_spread);
#define EM_APPEND(...) len += snprintf(buf + ((size_t)len < size ? (size_t)len : size), \
                                       (size_t)len < size ? size - (size_t)len : 0, __VA_ARGS__)
    if (r->flops > 0) EM_APPEND(", %.2f GFLOP/s", r->gflops);
    if (r->bytes > 0) EM_APPEND(", %.2f GB/s", r->gbps);
    if (r->flops > 0 && r->peak_gflops > 0) EM_APPEND(", %.1f%% of peak", r->pct_peak);
#undef EM_APPEND
    return len;
}
