/* Eager dispatch and the eager MNIST MLP training step, beside PyTorch doing
 * the same work with the same threads in the same run (bench/torch_mlp.py).
 *
 *   build/bench/mlp [threads]      (default 1)
 */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best of 5 rounds of `reps` 1-element adds, in microseconds per add. */
static double dispatch_us(bool taped) {
    em_tensor *a = em_keep(em_ones(EM_F32, EM_SHAPE(1))), *b = em_keep(em_ones(EM_F32, EM_SHAPE(1)));
    const int reps = 1000, blocks = 200;
    double best = 1e9;
    for (int round = 0; round < 5; round++) {
        double t = now();
        for (int k = 0; k < blocks; k++) {
            em_scope_begin();
            em_tape *tape = taped ? em_tape_begin(false) : NULL;
            for (int i = 0; i < reps; i++) em_add(a, b);
            em_tape_release(tape);
            em_scope_end();
        }
        double us = (now() - t) / (reps * blocks) * 1e6;
        if (us < best) best = us;
    }
    em_release(a);
    em_release(b);
    return best;
}

typedef struct {
    em_tensor *w1, *b1, *w2, *b2;
} mlp;

static double step_us(int steps) {
    em_set_seed(0);
    mlp m = {
        em_get_variable("bench/w1", EM_F32, EM_SHAPE(784, 500), EM_INIT_TRUNC_NORMAL(0, 0.1)),
        em_get_variable("bench/b1", EM_F32, EM_SHAPE(500), EM_INIT_CONST(0.1)),
        em_get_variable("bench/w2", EM_F32, EM_SHAPE(500, 10), EM_INIT_TRUNC_NORMAL(0, 0.1)),
        em_get_variable("bench/b2", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0.1)),
    };
    em_tensor *vars[4] = {m.w1, m.b1, m.w2, m.b2};
    em_tensor *x = em_keep(em_random_uniform(EM_F32, EM_SHAPE(100, 784), 0, 1));
    int64_t labels[100];
    for (int i = 0; i < 100; i++) labels[i] = i % 10;
    em_tensor *y = em_keep(em_tensor_from(EM_I64, EM_SHAPE(100), labels));
    em_optimizer *adam = em_adam(1e-3, 0.9, 0.999, 1e-8);
    double best = 1e9;
    for (int round = 0; round < 6; round++) {
        double t = now();
        for (int s = 0; s < steps; s++) {
            em_scope_begin();
            em_tape *tape = em_tape_begin(false);
            em_tensor *h = em_dropout(em_relu(em_add(em_matmul(x, m.w1), m.b1)), 0.9);
            em_tensor *logits = em_add(em_matmul(h, m.w2), m.b2);
            em_tensor *loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(y, logits), EM_ALL_AXES, false);
            em_tape_stop(tape);
            if (em_minimize(adam, tape, loss, 4, vars)) {
                fprintf(stderr, "mlp: %s\n", em_last_error());
                exit(1);
            }
            em_tape_release(tape);
            em_scope_end();
        }
        double us = (now() - t) / steps * 1e6;
        if (round > 0 && us < best) best = us; /* round 0 warms up */
    }
    em_optimizer_release(adam);
    em_release(x);
    em_release(y);
    return best;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    em_set_num_threads(threads);
    double add = dispatch_us(false), add_tape = dispatch_us(true);
    double step = step_us(50);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss / 1024.0;

    char cmd[256], line[512] = "";
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d /usr/bin/python3 bench/torch_mlp.py %d 2>/dev/null",
             threads, threads, threads);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = '\0';
        pclose(p);
    }
    char version[64] = "";
    double t_add = 0, t_add_grad = 0, t_step = 0, t_rss = 0;
    bool torch = sscanf(line, "torch %63s add_us %lf add_grad_us %lf step_us %lf peak_rss_mib %lf", version, &t_add,
                        &t_add_grad, &t_step, &t_rss) == 5;

    printf("threads: %d\n", threads);
    printf("%-34s %12s %12s %10s\n", "measure", "ember", torch ? "pytorch" : "pytorch(n/a)", "ratio");
#define ROW(name, e, t, unit) \
    printf("%-34s %10.3f%s %10.3f%s %9.3fx\n", name, e, unit, t, unit, torch && (t) > 0 ? (e) / (t) : 0.0)
    ROW("add 1 elem, no tape (us)", add, t_add, "  ");
    ROW("add 1 elem, recording (us)", add_tape, t_add_grad, "  ");
    ROW("MLP eager step, batch 100 (us)", step, t_step, "  ");
    ROW("peak RSS (MiB, whole process)", rss, t_rss, "  ");
    if (torch) printf("pytorch %s via /usr/bin/python3\n", version);
    else printf("pytorch: not available (%s)\n", line[0] ? line : "no output");
    em_shutdown();
    return 0;
}
