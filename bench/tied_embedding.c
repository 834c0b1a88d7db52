/* The memory of a tied embedding's backward pass: one [V, C] variable W used
 * as the embedding (em_gather(W, ids, 0)) and as the output projection
 * (em_matmul_t(h, W, false, true)), GPT-2's sizes by default.
 *
 *   build/bench/tied_embedding [threads [V C T]]   (default 1, 50304 768 1024)
 *
 * Reports how much the process's peak resident memory grows during
 * em_gradients (Linux's VmHWM, reset through /proc/self/clear_refs just
 * before it), in MiB and in [V, C] float32 buffers, and the gradient's
 * checksum. The tape adds the gather's gradient into the projection's, so the
 * backward pass holds one [V, C] buffer for W, not three (the projection's,
 * the gather's scatter into zeros, and their sum). */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A field of /proc/self/status in KiB ("VmRSS:", "VmHWM:"); -1 when unreadable. */
static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field))) v = strtol(line + strlen(field), NULL, 10);
    fclose(f);
    return v;
}

/* Resets VmHWM to the current resident size; false when the kernel does not allow it. */
static int reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int64_t V = argc > 4 ? atoll(argv[2]) : 50304, C = argc > 4 ? atoll(argv[3]) : 768,
            T = argc > 4 ? atoll(argv[4]) : 1024;
    em_set_num_threads(threads);
    em_set_seed(1);
    em_tensor *W = em_get_variable("wte", EM_F32, EM_SHAPE(V, C), EM_INIT_NORMAL(0, 0.02));
    em_tensor *ids = em_cast(em_mul_scalar(em_random_uniform(EM_F64, EM_SHAPE(T), 0, 1), (double)V - 1), EM_I64);
    em_tensor *labels = em_cast(em_mul_scalar(em_random_uniform(EM_F64, EM_SHAPE(T), 0, 1), (double)V - 1), EM_I64);
    if (!W || !ids || !labels) {
        fprintf(stderr, "tied_embedding: %s\n", em_last_error());
        return 1;
    }
    em_tape *tape = em_tape_begin(false);
    em_tensor *h = em_tanh(em_gather(W, ids, 0));                        /* [T, C] */
    em_tensor *logits = em_matmul_t(h, W, false, true);                  /* [T, V] */
    em_tensor *loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(labels, logits), EM_ALL_AXES, false);
    em_tape_stop(tape);
    long before = status_kib("VmRSS:");
    int peak_ok = reset_peak();
    em_tensor *g = NULL;
    if (em_gradients(tape, loss, 1, &W, &g)) {
        fprintf(stderr, "tied_embedding: %s\n", em_last_error());
        return 1;
    }
    long peak = status_kib("VmHWM:");
    em_tape_release(tape);
    double buffer_mib = (double)V * (double)C * 4 / (1 << 20);
    double grown = (double)(peak - before) / 1024;
    printf("tied embedding V=%lld C=%lld T=%lld, %d thread(s): loss %.6f, |dW| sum %.6f\n", (long long)V,
           (long long)C, (long long)T, threads, em_item(loss), em_item(em_sum(em_abs(g), EM_ALL_AXES, false)));
    if (!peak_ok || before < 0 || peak < 0)
        printf("peak resident memory: not measurable here (/proc/self/clear_refs)\n");
    else
        printf("backward pass: peak resident memory grew %.1f MiB = %.2f [V, C] float32 buffers of %.1f MiB\n", grown,
               grown / buffer_mib, buffer_mib);
    em_shutdown();
    return 0;
}
