/* Fused attention (em_scaled_dot_product_attention) against the same
 * attention composed from Ember's ops (matmul, the causal mask added, softmax,
 * matmul; the tape for the backward pass), in the same run: B 4, H 12,
 * T 1024, D 64, float32, causal, forward and backward.
 *
 *   build/bench/attention [threads] [device]   (default 1 thread, /cpu:0)
 *
 * For each: the time per forward + backward (median of em_bench_run), the
 * extra memory (the allocator's peak during one call minus what was in use
 * before it: inputs excluded, outputs and gradients included), then the
 * speedup and memory ratio (issue #17 asks at least 2x faster and at most 1/8
 * of the memory), and the fused version's GFLOP/s as a fraction of the peak
 * that em_bench_cpu_peak_gflops measures in this run. FLOPs are counted as
 * flash attention counts them: 4 B H T^2 D forward, 2.5 times that
 * backward (its recomputation included), halved by the causal cut. On a
 * GPU each call ends with em_device_sync; the fraction of peak is left out
 * (em_bench_cpu_peak_gflops is the CPU's), and the extra memory is the
 * device's peak, which cannot be reset: the fused version runs first. */
#include <ember.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 4, H = 12, T = 1024, D = 64 };

typedef struct {
    em_tensor *q, *k, *v, *g, *mask;
    bool fused;
    const char *device; /* NULL: the CPU */
} attn_bench;

static void fail(const char *what) {
    fprintf(stderr, "attention: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

/* Forward and backward once: the output and the three gradients. */
static void step(void *ctx) {
    attn_bench *b = ctx;
    em_scope_begin();
    em_tensor *in[3] = {b->q, b->k, b->v}, *grads[3], *o;
    em_tape *tape = em_tape_begin(false);
    if (b->fused) {
        o = em_scaled_dot_product_attention(b->q, b->k, b->v, true, 0, NULL);
    } else {
        em_tensor *s = em_mul(em_matmul_t(b->q, b->k, false, true), em_scalar(EM_F32, 1 / sqrt((double)D)));
        o = em_matmul(em_softmax(em_add(s, b->mask), -1), b->v);
    }
    if (!o || em_gradients_with(tape, o, b->g, 3, in, grads)) fail(b->fused ? "fused" : "composed");
    em_tape_release(tape);
    em_scope_end();
    if (b->device && em_device_sync(b->device)) fail("sync");
}

/* Bytes allocated beyond what was in use before one call, at its peak. */
static double extra_mib(attn_bench *b) {
    if (b->device) {
        em_device_memory m0, m1;
        if (em_device_memory_stats(b->device, &m0)) fail("memory");
        step(b);
        if (em_device_memory_stats(b->device, &m1)) fail("memory");
        return (double)(m1.peak - m0.in_use) / (1 << 20);
    }
    size_t before = em_host_memory_stats().in_use;
    em_host_memory_reset_peak();
    step(b);
    return (double)(em_host_memory_stats().peak - before) / (1 << 20);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    const char *device = argc > 2 && strncmp(argv[2], "/cpu", 4) ? argv[2] : NULL;
    em_set_num_threads(threads);
    if (device && em_device_begin(device)) fail(device);
    em_shape s = EM_SHAPE(B, H, T, D);
    attn_bench b = {
        .q = em_random_normal(EM_F32, s, 0, 1),
        .k = em_random_normal(EM_F32, s, 0, 1),
        .v = em_random_normal(EM_F32, s, 0, 1),
        .g = em_random_normal(EM_F32, s, 0, 1),
    };
    /* the composed version's causal mask: -inf above the diagonal */
    float *m = malloc(sizeof(float) * T * T);
    if (!m) fail("mask");
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) m[i * T + j] = j <= i ? 0.0f : -INFINITY;
    b.mask = em_tensor_from(EM_F32, EM_SHAPE(T, T), m);
    b.device = device;
    free(m);
    if (!b.q || !b.k || !b.v || !b.g || !b.mask) fail("inputs");

    double peak = device ? 0 : em_bench_cpu_peak_gflops(EM_F32, threads);
    double flops = 3.5 * 4.0 * B * H * (double)T * T * D / 2;
    em_bench_config cfg = em_bench_defaults();
    cfg.warmup_s = 0;
    cfg.min_reps = 3;
    cfg.max_time_s = 5;
    cfg.flops = flops;
    cfg.peak_gflops = peak;
    if (device)
        printf("attention B=%d H=%d T=%d D=%d float32 causal, forward + backward, on %s\n", B, H, T, D, device);
    else
        printf("attention B=%d H=%d T=%d D=%d float32 causal, forward + backward, %d thread%s; peak %.1f GFLOP/s\n", B,
               H, T, D, threads, threads == 1 ? "" : "s", peak);

    em_bench_result r[2];
    double mib[2];
    const char *names[2] = {"composed", "fused"};
    for (int i = 0; i < 2; i++) {
        int f = device ? 1 - i : i;
        b.fused = f;
        mib[f] = extra_mib(&b);
        if (em_bench_run(names[f], step, &b, &cfg, &r[f])) fail("bench");
        char line[256];
        em_bench_format(&r[f], line, sizeof line);
        printf("%s; extra memory %.1f MiB\n", line, mib[f]);
    }
    printf("fused vs composed: %.2fx faster, %.1fx less extra memory (1/%.0f)", r[0].median_s / r[1].median_s,
           mib[0] / mib[1], mib[0] / mib[1]);
    if (device)
        printf("; fused at %.1f TFLOP/s\n", flops / r[1].median_s / 1e12);
    else
        printf("; fused at %.1f%% of peak\n", r[1].pct_peak);
    if (device) em_device_end();
    em_shutdown();
    return 0;
}
