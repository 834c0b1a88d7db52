/* Kernel microbenchmarking: time a C function (an op, a training step, any
 * code) with warm-up, batching and a stop rule, and derive GFLOP/s, GB/s and
 * percent of peak. The `ember-bench` tool is built on these functions.
 *
 *   static void step(void *ctx) { em_scope_begin(); em_matmul(a, b); em_scope_end(); }
 *
 *   em_bench_config cfg = em_bench_defaults();
 *   cfg.flops = 2.0 * m * n * k;
 *   cfg.peak_gflops = em_bench_cpu_peak_gflops(EM_F32, 0);
 *   em_bench_result r;
 *   if (em_bench_run("matmul", step, NULL, &cfg, &r) == 0) {
 *       char line[256];
 *       em_bench_format(&r, line, sizeof line);
 *       puts(line);   // matmul: median 1.234 ms (min ..., max ...), 87.0 GFLOP/s, 61.2% of peak
 *   }
 *
 * How a run goes: untimed warm-up calls in doubling batches (at least
 * warmup_s, and until a batch lasts min_sample_s) estimate the cost of one
 * call; the timed phase then measures samples of calls_per_sample calls each,
 * so a sample lasts at least min_sample_s and timer resolution does not
 * matter. Sampling stops at max_reps samples, after max_time_s, or once at
 * least min_reps samples and min_time_s have passed and the relative spread
 * (p75 - p25) / median is at most target_rel_spread. Times are per call. */
#ifndef EMBER_BENCH_H
#define EMBER_BENCH_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_bench_config {
    double min_time_s;        /* sample at least this long (default 0.1) */
    double max_time_s;        /* stop sampling after this long (default 1.0); warm-up not counted */
    int min_reps;             /* at least this many samples unless max_time_s ends first (default 5) */
    int max_reps;             /* at most this many samples (default 10000) */
    double target_rel_spread; /* stop once (p75 - p25) / median <= this (default 0.02) */
    double warmup_s;          /* untimed calls first (default 0.05; 0 still calibrates with a few calls) */
    double min_sample_s;      /* each sample lasts at least this long (default 50e-6) */
    double flops;             /* floating-point operations per call, for GFLOP/s (0: unknown) */
    double bytes;             /* bytes moved per call, for GB/s (0: unknown) */
    double peak_gflops;       /* for percent of peak (0: unknown); see em_bench_cpu_peak_gflops */
} em_bench_config;

typedef struct em_bench_result {
    char name[64];           /* the name given to em_bench_run (truncated) */
    char device[16];         /* "/cpu:0": host wall clock (a GPU timing will name its device) */
    int threads;             /* em_num_threads() during the run */
    int samples;             /* timed samples */
    int64_t calls_per_sample;
    int64_t calls;           /* timed calls: samples * calls_per_sample */
    int64_t warmup_calls;    /* untimed calls before them */
    double min_s, p25_s, median_s, p75_s, max_s, mean_s; /* seconds per call, over the samples */
    double rel_spread;       /* (p75 - p25) / median */
    bool converged;          /* rel_spread <= target_rel_spread */
    double warmup_time_s;    /* wall time of the warm-up */
    double sample_time_s;    /* wall time of the timed phase */
    double flops, bytes, peak_gflops; /* copied from the config */
    double gflops;           /* flops / median / 1e9; 0 when flops is unknown */
    double gbps;             /* bytes / median / 1e9; 0 when bytes is unknown */
    double pct_peak;         /* 100 * gflops / peak_gflops; 0 when either is unknown */
} em_bench_result;

/* The defaults listed in em_bench_config. */
em_bench_config em_bench_defaults(void);

/* Times fn(ctx) as described above and fills *out. cfg NULL means the
 * defaults. Returns 0, or -1 with an error ("bench: ...") for a NULL fn or
 * out, or an inconsistent config (negative or NaN values, max_reps < 1,
 * min_reps > max_reps, min_time_s > max_time_s, min_sample_s <= 0). fn
 * reports nothing back: check once before timing that it does what it should. */
int em_bench_run(const char *name, void (*fn)(void *ctx), void *ctx, const em_bench_config *cfg,
                 em_bench_result *out);

/* Measured peak GFLOP/s of this CPU for float32 or float64 on `threads`
 * threads (< 1: em_num_threads()): each thread runs a loop of independent
 * fused multiply-adds with the widest vectors the CPU has (AVX-512, AVX2+FMA,
 * else scalar). Takes about 0.1 s. -1 with an error for other dtypes. */
double em_bench_cpu_peak_gflops(em_dtype dtype, int threads);

/* One line: "name: median 1.234 ms (min 1.200 ms, max 1.400 ms, 200 samples x
 * 8 calls, spread 1.2%), 87.0 GFLOP/s, 12.1 GB/s, 61.2% of peak", the rates
 * only where known. Returns the length the whole line needs, like snprintf. */
int em_bench_format(const em_bench_result *r, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
