/* The memory of a training step under autocast against float32 (issue 20), one process per configuration:
 * the Deep MNIST CNN step (examples/deep_mnist.c's network, batch 100) and the GPT-2 step
 * (examples/gpt2_model.h, random tokens), forward and loss under em_autocast_begin, backward, Adam(W).
 * Measured on the step after two applied ones (the first makes the optimizer's slots; float16's loss scaler
 * skips steps until its scale fits), from the host allocator's counters
 * (em_host_memory_stats):
 *   - activations: the bytes the forward pass and the loss leave held for the backward pass (in use after the
 *     loss minus before the step: saved activations and autocast's casts);
 *   - step peak: the most held at once during the step (forward, backward, update), minus before;
 *   - in use before: variables, optimizer slots, the batch;
 * and the process's peak RSS (getrusage). bench/autocast.sh runs it for each model and dtype.
 *
 *   build/bench/autocast cnn|gpt2 f32|bf16|f16 [--layers L --heads H --channels C --batch B --seq T]
 */
#include <ember.h>

#include "../examples/gpt2_model.h"
#include "deep_mnist_cnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int fail(const char *what) {
    fprintf(stderr, "bench/autocast: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

int main(int argc, char **argv) {
    int L = 4, NH = 4, C = 128, B = 4, T = 64;
    const char *model = argc > 1 ? argv[1] : "", *mode = argc > 2 ? argv[2] : "";
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *a = argv[i];
        int *n = !strcmp(a, "--layers") ? &L : !strcmp(a, "--heads") ? &NH : !strcmp(a, "--channels") ? &C
               : !strcmp(a, "--batch") ? &B : !strcmp(a, "--seq") ? &T : NULL;
        if (!n) break;
        *n = atoi(argv[i + 1]);
    }
    bool cnn = !strcmp(model, "cnn"), gpt2 = !strcmp(model, "gpt2");
    em_dtype dtype = !strcmp(mode, "f32") ? EM_F32 : !strcmp(mode, "bf16") ? EM_BF16 : !strcmp(mode, "f16") ? EM_F16
                                                                                                           : EM_DTYPE_COUNT;
    if ((!cnn && !gpt2) || dtype == EM_DTYPE_COUNT || (argc - 3) % 2 || L < 1 || NH < 1 || C < NH || C % NH ||
        B < 1 || T < 1) {
        fprintf(stderr, "usage: bench/autocast cnn|gpt2 f32|bf16|f16 [--layers L --heads H --channels C --batch B "
                        "--seq T]\n");
        return 2;
    }
    em_set_seed(1);
    em_tensor *cnn_vars[8], **vars = cnn_vars, *x = NULL, *y = NULL, *batch = NULL;
    int nvars = 8;
    gpt2_model m;
    em_optimizer *opt;
    if (cnn) {
        cnn_variables(cnn_vars);
        x = em_keep(em_random_uniform(EM_F32, EM_SHAPE(100, 28, 28, 1), 0, 1));
        y = em_keep(em_cast(em_random_uniform(EM_F32, EM_SHAPE(100), 0, 9.99), EM_I64));
        opt = em_adam(1e-4, 0.9, 0.999, 1e-8);
    } else {
        gpt2_keep_freed_memory(); /* as examples/gpt2 runs */
        em_llmc_config config = {.max_seq_len = T, .vocab_size = 50257, .padded_vocab_size = 50304,
                                 .num_layers = L, .num_heads = NH, .channels = C};
        if (gpt2_create(&m, &config, EM_F32)) return fail("creating the model");
        vars = m.vars;
        nvars = m.nvars;
        batch = em_keep(em_cast(em_random_uniform(EM_F32, EM_SHAPE(B, T + 1), 0, 50256), EM_I32));
        opt = em_adamw(1e-4, 0.9, 0.95, 1e-8, 0.1);
    }
    for (int i = 0; i < nvars; i++)
        if (!vars[i]) return fail("creating the variables");
    em_loss_scaler *scaler = dtype == EM_F16 ? em_dynamic_loss_scaler(65536, 2, 0.5, 2000) : NULL;
    em_tensor **grads = malloc(sizeof *grads * (size_t)nvars);
    if (!opt || !grads || (dtype == EM_F16 && !scaler)) return fail("making the optimizer");

    em_host_memory before = {0}, forward = {0}, after = {0};
    double loss_value = 0;
    for (int step = 0; step < 50 && em_optimizer_step(opt) < 3; step++) {
        em_scope_begin();
        before = em_host_memory_stats();
        em_host_memory_reset_peak();
        em_tape *tape = em_tape_begin(false);
        if (dtype != EM_F32) em_autocast_begin(dtype);
        em_tensor *loss = cnn ? cnn_loss(vars, x, y) : gpt2_loss(&m, batch);
        if (dtype != EM_F32) em_autocast_end();
        em_tensor *scaled = scaler && loss ? em_loss_scaler_scale(scaler, loss) : loss;
        em_tape_stop(tape);
        forward = em_host_memory_stats();
        if (!scaled || em_compute_gradients(opt, tape, scaled, nvars, vars, grads) ||
            (scaler ? em_loss_scaler_step(scaler, opt, nvars, grads, vars) < 0
                    : em_apply_gradients(opt, nvars, grads, vars)))
            return fail("training step");
        em_tape_release(tape);
        loss_value = em_item(loss);
        after = em_host_memory_stats();
        em_scope_end();
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double MiB = 1024.0 * 1024.0;
    char size[96] = "batch 100";
    if (gpt2) snprintf(size, sizeof size, "L%d H%d C%d B%d T%d", L, NH, C, B, T);
    printf("step memory %s %s %s: activations %.1f MiB, step peak %.1f MiB, in use before %.1f MiB; "
           "peak RSS %.1f MiB; loss %.4f\n",
           model, size, mode, (double)(forward.in_use - before.in_use) / MiB, (double)(after.peak - before.in_use) / MiB,
           (double)before.in_use / MiB, (double)ru.ru_maxrss / 1024.0, loss_value);
    free(grads);
    em_loss_scaler_release(scaler);
    em_optimizer_release(opt);
    em_release(x);
    em_release(y);
    em_release(batch);
    if (gpt2) gpt2_free(&m);
    em_shutdown();
    return 0;
}
