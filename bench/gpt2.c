/* One GPT-2 training step (forward, backward from the tape, AdamW) with examples/gpt2_model.h, the issue's
 * measurement: GPT-2 small (12 layers, 12 heads, 768 channels, vocabulary 50257 padded to 50304), B = 4,
 * T = 64, batches from the token loader.
 *
 *   build/bench/gpt2 [threads [steps]] [--layers L --heads H --channels C --batch B --seq T]
 *                    [--save FILE.bin] [--check TOKENS.bin]
 *
 * Prints the median step time of `steps` (default 3) after one warm-up step, GFLOP/s and the share of the
 * measured FMA peak (em_bench_cpu_peak_gflops), and the loader's stall as a share of the steps' time.
 * --save writes the initial model as an llm.c checkpoint; --check prints the loss of the initial model on
 * the first B * T + 1 tokens of an llm.c token shard laid out as llm.c's train_gpt2.c reads a batch (row b:
 * tokens b T .. b T + T - 1, targets one further): bench/gpt2.sh feeds both to llm.c for the cross-check. */
#include <ember.h>

#include "../examples/gpt2_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int fail(const char *what) {
    fprintf(stderr, "bench/gpt2: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

int main(int argc, char **argv) {
    int threads = 1, steps = 3, L = 12, NH = 12, C = 768, B = 4, T = 64, positional = 0;
    const char *save = NULL, *check = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *n = !strcmp(a, "--layers") ? &L : !strcmp(a, "--heads") ? &NH : !strcmp(a, "--channels") ? &C
               : !strcmp(a, "--batch") ? &B : !strcmp(a, "--seq") ? &T : NULL;
        if (n && v) *n = atoi(argv[++i]);
        else if (!strcmp(a, "--save") && v) save = argv[++i];
        else if (!strcmp(a, "--check") && v) check = argv[++i];
        else if (a[0] != '-' && positional < 2) *(positional++ ? &steps : &threads) = atoi(a);
        else {
            fprintf(stderr, "usage: bench/gpt2 [threads [steps]] [--layers L --heads H --channels C --batch B "
                            "--seq T] [--save FILE.bin] [--check TOKENS.bin]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1 || L < 1 || NH < 1 || C < 1 || C % NH || B < 1 || T < 1 || T > 1024) {
        fprintf(stderr, "bench/gpt2: sizes must be positive, channels a multiple of heads, T <= 1024\n");
        return 2;
    }
    gpt2_keep_freed_memory();
    em_set_num_threads(threads);
    em_set_seed(1);
    em_llmc_config config = {.max_seq_len = 1024, .vocab_size = 50257, .padded_vocab_size = 50304,
                             .num_layers = L, .num_heads = NH, .channels = C};
    gpt2_model m;
    if (gpt2_create(&m, &config, EM_F32)) return fail("creating the model");
    if (save && gpt2_save(&m, save)) return fail("writing the llm.c checkpoint");
    if (check) {
        em_scope_begin();
        em_tensor *tokens = em_llmc_load_tokens(check, config.vocab_size);
        if (!tokens || em_numel(tokens) < (int64_t)B * T + 1) return fail("reading --check's tokens");
        em_tensor *inputs = em_reshape(em_slice(tokens, (int64_t[]){0}, (int64_t[]){(int64_t)B * T}), EM_SHAPE(B, T));
        em_tensor *targets = em_reshape(em_slice(tokens, (int64_t[]){1}, (int64_t[]){(int64_t)B * T}), EM_SHAPE(B, T));
        printf("initial loss on the first %d x %d tokens of %s: %.6f\n", B, T, check,
               em_item(gpt2_loss_of(&m, inputs, targets)));
        em_scope_end();
    }

    /* a shard of random tokens for the loader */
    char shard[] = "/tmp/ember_gpt2_bench_XXXXXX";
    int fd = mkstemp(shard);
    if (fd < 0) return fail("making a temporary file");
    close(fd);
    em_scope_begin();
    int64_t ntok = (int64_t)(steps + 1) * B * (T + 1) * 4;
    em_tensor *ids = em_cast(em_mul_scalar(em_random_uniform(EM_F64, EM_SHAPE(ntok), 0, 1), config.vocab_size - 1), EM_I32);
    int rc = em_llmc_save_tokens(shard, ids);
    em_scope_end();
    em_token_loader *loader = rc ? NULL : em_token_loader_open(shard, config.vocab_size, B, T, 1, 0, 1);
    unlink(shard);
    if (!loader) return fail("making the token shard");

    em_optimizer *opt = em_adamw(1e-4, 0.9, 0.999, 1e-8, 0.0);
    if (!opt || em_optimizer_set_decay_filter(opt, gpt2_decays, NULL)) return fail("making the optimizer");
    double *times = malloc(sizeof(double) * (size_t)steps), loss = 0, stall0 = 0, total = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) stall0 = em_token_loader_stall_seconds(loader);
        double t0 = now();
        em_scope_begin();
        loss = gpt2_train_step(&m, opt, em_token_loader_next(loader));
        em_scope_end();
        if (isnan(loss)) return fail("training step");
        if (s > 0) total += times[s - 1] = now() - t0;
    }
    double stall = em_token_loader_stall_seconds(loader) - stall0;
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double median = times[steps / 2];
    double flops = 6.0 * B * T * (12.0 * L * C * C + (double)config.padded_vocab_size * C) + 12.0 * L * B * T * T * C;
    double peak = em_bench_cpu_peak_gflops(EM_F32, threads);
    printf("gpt2 step L%d H%d C%d B%d T%d, %d thread%s: %.1f ms (median of %d; min %.1f, max %.1f), "
           "%.1f GFLOP/s (%.2e FLOP), %.1f%% of the measured FMA peak %.0f GFLOP/s; loader stall %.4f%% of the "
           "steps; last loss %.4f\n",
           L, NH, C, B, T, threads, threads > 1 ? "s" : "", 1e3 * median, steps, 1e3 * times[0],
           1e3 * times[steps - 1], flops / median / 1e9, flops, 100 * flops / median / 1e9 / peak, peak,
           100 * stall / total, loss);
    free(times);
    em_token_loader_close(loader);
    em_optimizer_release(opt);
    gpt2_free(&m);
    em_shutdown();
    return 0;
}
